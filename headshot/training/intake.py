"""`headshot prepare`: a folder of selfies -> a clean, framed training set.

`prepare_dataset(config)` reads every photo in the folder (sorted by name), judges it
(`quality`), crops the accepted ones to the base model's training resolution
(`cropping`) and writes OUTPUTS/<subject>/dataset/:

    images/<name>.png   square headshot crops, re-encoded, no metadata
    masks/<name>.png    white = face region, same size
    dataset.json        a verdict for every source photo (see headshot/dataset_record.py)
    prepare_run.json    timings of this run (kept apart so dataset.json is reproducible)

dataset.json is byte-identical when the same folder is prepared again: no times, no
absolute paths, and nothing from the photos' EXIF (GPS, device, names).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pydantic import Field

from headshot.analysis.faces import Detector
from headshot.analysis.image_io import DEFAULT_MAX_PIXELS, is_photo_name
from headshot.busy import subject_busy
from headshot.config import DEFAULT_BASE_MODEL, StrictModel
from headshot.dataset_record import DatasetRecord, PhotoRecord, dataset_json
from headshot.errors import HeadshotError
from headshot.families import FamilyName
from headshot.layout import SubjectLayout
from headshot.records import atomic_write_bytes, atomic_write_json, library_versions
from headshot.storage import StagedFolder, unique_names
from headshot.training.intake_summary import print_summary, too_few_message
from headshot.training.photo_analysis import AnalysisSettings, PhotoAnalysis, analyse_photo
from headshot.training.quality import Candidate, QualityThresholds, judge_against_set
from headshot.training.resolution import training_size


class PrepareConfig(StrictModel):
    """Options of `headshot prepare`; documented in configs/prepare.yaml."""

    photos: Path
    subject: str
    base_model: str = DEFAULT_BASE_MODEL
    outputs: Path = Path("outputs")
    resolution: int | None = Field(None, ge=8, le=4096)
    family: FamilyName | None = None
    detector: Detector = "hog"
    upsample: int = Field(1, ge=0, le=3)
    detect_max_side: int = Field(800, ge=100, le=10_000)
    face_fraction: float = Field(0.45, gt=0.05, le=1.0)
    face_center_y: float = Field(0.55, gt=0, lt=1)
    min_photos: int = Field(5, ge=1, le=10_000)
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, ge=1, le=1_000_000_000)
    workers: int = Field(2, ge=1, le=256)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)

    @property
    def layout(self) -> SubjectLayout:
        return SubjectLayout.for_subject(self.outputs, self.subject)


def prepare_dataset(config: PrepareConfig, *, show_summary: bool = True) -> DatasetRecord:
    """Judge and crop every photo in `config.photos`; write and return the dataset record.

    Raises HeadshotError (after writing dataset.json) when fewer than `min_photos` pass.
    """
    with subject_busy(config.layout.root, "prepare", create=True):
        return _prepare_dataset(config, show_summary)


def _prepare_dataset(config: PrepareConfig, show_summary: bool) -> DatasetRecord:
    started = time.perf_counter()
    layout = config.layout
    paths = list_photos(config.photos)
    family, resolution = training_size(config.base_model, config.family)
    resolution = config.resolution or resolution
    settings = AnalysisSettings(
        resolution=resolution,
        detector=config.detector,
        upsample=config.upsample,
        detect_max_side=config.detect_max_side,
        face_fraction=config.face_fraction,
        face_center_y=config.face_center_y,
        max_pixels=config.max_pixels,
        thresholds=config.quality,
    )
    analyses = _analyse_all(paths, settings, config.workers)
    _judge_set(analyses, config.quality)
    names = _output_names(analyses)
    # The new dataset is built beside the old one and swapped in whole (storage.StagedFolder).
    # A run with too few usable photos keeps an earlier dataset as it was; only a first run
    # keeps its (failed) dataset.json, for inspection.
    staged = StagedFolder(layout.dataset)
    repaired = staged.recover()
    if repaired and show_summary:
        print(repaired, file=sys.stderr)
    earlier = dataset_json(layout.dataset).is_file()
    staging = staged.begin()
    try:
        record = _write_dataset(staging, config, family, resolution, analyses, names)
        _write_run_record(staging, analyses, config.workers, time.perf_counter() - started)
        enough = len(record.accepted) >= config.min_photos
        if enough or not earlier:
            staged.commit()
        else:
            staged.abort()
    except BaseException:
        staged.abort()
        raise
    if show_summary:
        print_summary(record, layout.dataset)
    if not enough:
        kept = layout.dataset if earlier else None
        raise HeadshotError(too_few_message(record, config.min_photos, config.photos, kept))
    return record


def list_photos(folder: Path) -> list[Path]:
    """The photo files in `folder` (by suffix, not recursive), sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "folder not found"
        raise HeadshotError(f"{folder}: photo {what}")
    try:
        # Regular files only: a FIFO or device named x.jpg would block or never end.
        entries = [p for p in folder.iterdir() if is_photo_name(p) and p.is_file()]
    except OSError as exc:
        raise HeadshotError(f"{folder}: cannot list the photo folder ({exc.strerror or exc})") from None
    paths = sorted(entries, key=lambda p: p.name)
    if not paths:
        raise HeadshotError(f"{folder}: no photos found (JPEG, PNG, WebP, TIFF, BMP or HEIC files)")
    return paths


def _analyse_all(paths: list[Path], settings: AnalysisSettings, workers: int) -> list[PhotoAnalysis]:
    workers = min(workers, len(paths), os.cpu_count() or 1)
    if workers <= 1:
        return [analyse_photo(path, settings) for path in paths]
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(analyse_photo, paths, [settings] * len(paths)))
    except BrokenProcessPool:
        raise HeadshotError(
            f"{paths[0].parent}: a worker process died while analysing the photos (out of memory?); "
            "try again with --workers 1 or a lower 'max_pixels'"
        ) from None


def _judge_set(analyses: list[PhotoAnalysis], thresholds: QualityThresholds) -> None:
    candidates = []
    for analysis in analyses:
        if analysis.verdict.accepted and analysis.face is not None and analysis.thumbnail is not None:
            candidates.append(
                Candidate(
                    name=analysis.name,
                    metrics=analysis.metrics,
                    embedding=analysis.face.embedding,
                    thumbnail=analysis.thumbnail,
                    aspect=analysis.width / analysis.height,
                )
            )
    judge_against_set(candidates, thresholds)
    by_name = {candidate.name: candidate for candidate in candidates}
    for analysis in analyses:
        if analysis.name in by_name:
            analysis.verdict = by_name[analysis.name].verdict


def _output_names(analyses: list[PhotoAnalysis]) -> dict[str, str]:
    """images/ and masks/ file names: the source's stem, or stem_suffix where stems clash.

    Names that would still be one file (face.jpg and face.JPG; Face.png and face.png on a
    case-insensitive disk) are an error naming both, never a silent overwrite."""
    stems = [Path(a.name).stem.casefold() for a in analyses]
    pairs = []
    for analysis, stem in zip(analyses, stems):
        original = Path(analysis.name).stem
        suffix = Path(analysis.name).suffix.lstrip(".")
        pairs.append(
            (analysis.name, f"{original}_{suffix}.png" if stems.count(stem) > 1 else f"{original}.png")
        )
    return unique_names(pairs, "the crop")


def _write_dataset(
    folder: Path,
    config: PrepareConfig,
    family: str,
    resolution: int,
    analyses: list[PhotoAnalysis],
    names: dict[str, str],
) -> DatasetRecord:
    photos = []
    for analysis in analyses:
        accepted = analysis.verdict.accepted
        if accepted:
            atomic_write_bytes(folder / "images" / names[analysis.name], analysis.crop_png)
            atomic_write_bytes(folder / "masks" / names[analysis.name], analysis.mask_png)
        photos.append(_photo_record(analysis, names[analysis.name] if accepted else None))
    record = DatasetRecord(
        subject=config.subject,
        family=family,
        resolution=resolution,
        config=_recorded_config(config),
        versions=library_versions(),
        photos=photos,
    )
    atomic_write_json(dataset_json(folder), record.model_dump(mode="json"))
    return record


def _photo_record(analysis: PhotoAnalysis, output_name: str | None) -> PhotoRecord:
    face = analysis.face
    return PhotoRecord(
        source=analysis.name,
        sha256=analysis.sha256,
        verdict="accepted" if analysis.verdict.accepted else "rejected",
        reason_code=analysis.verdict.reason_code,
        reason=analysis.verdict.reason,
        width=analysis.width,
        height=analysis.height,
        face_box=list(face.box) if face is not None else None,
        landmarks5=[[round(float(v), 2) for v in point] for point in face.landmarks5] if face else None,
        crop_box=list(analysis.crop_box) if analysis.crop_box is not None else None,
        image=f"images/{output_name}" if output_name else None,
        mask=f"masks/{output_name}" if output_name else None,
        embedding=[round(float(v), 6) for v in face.embedding] if face is not None else None,
        metrics=dict(sorted(analysis.metrics.items())),
    )


def _recorded_config(config: PrepareConfig) -> dict:
    """The options that shaped the dataset, without folders (no absolute paths in the record)."""
    recorded = config.model_dump(mode="json", exclude={"photos", "outputs", "workers"})
    base = Path(config.base_model)
    recorded["base_model"] = base.name if base.expanduser().exists() else config.base_model
    return recorded


def _write_run_record(folder: Path, analyses: list[PhotoAnalysis], workers: int, seconds: float) -> None:
    atomic_write_json(
        folder / "prepare_run.json",
        {
            "seconds": round(seconds, 3),
            "workers": workers,
            "photos": len(analyses),
            "photos_per_second": round(len(analyses) / seconds, 3) if seconds > 0 else None,
            "seconds_per_photo": {a.name: a.seconds for a in analyses},
        },
    )
