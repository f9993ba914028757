"""The schema of `dataset/dataset.json`: the contract between `prepare` and later stages.

`prepare` writes it; `finetune` reads the accepted images and masks; ranking and the
audit read the identity embeddings. Paths inside are relative to the dataset folder,
and source photos are named by file name only (never their folder, never EXIF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from headshot.config import StrictModel, read_json_record
from headshot.errors import HeadshotError
from headshot.families import FamilyName
from headshot.records import check_inside

DATASET_FORMAT = 1

Verdict = Literal["accepted", "rejected"]


class PhotoRecord(StrictModel):
    source: str  # file name of the source photo, no folders
    sha256: str
    verdict: Verdict
    reason_code: str | None = None  # e.g. no_face, many_faces, too_small, blurred, duplicate
    reason: str | None = None  # human sentence, shown in the summary table
    width: int | None = None
    height: int | None = None
    face_box: list[int] | None = None  # left, top, right, bottom in the upright source
    landmarks5: list[list[float]] | None = None
    crop_box: list[int] | None = None
    image: str | None = None  # images/<name>.png, for accepted photos
    mask: str | None = None  # masks/<name>.png, white = face region
    embedding: list[float] | None = None  # 128-d dlib identity embedding
    # prepare writes: faces (count), face_score, focus, relative_focus, brightness, clipped,
    # yaw (degrees), upscale, identity_distance, duplicate_difference (see configs/prepare.yaml)
    metrics: dict[str, float] = Field(default_factory=dict)


class DatasetRecord(StrictModel):
    format: int = DATASET_FORMAT
    subject: str
    family: FamilyName  # a registered family (headshot.families)
    resolution: int
    config: dict = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)
    photos: list[PhotoRecord]

    @property
    def accepted(self) -> list[PhotoRecord]:
        return [photo for photo in self.photos if photo.verdict == "accepted"]


def dataset_json(folder: Path) -> Path:
    return Path(folder) / "dataset.json"


def read_dataset(folder: Path) -> DatasetRecord:
    """Read and check a dataset folder; errors name the folder and what is wrong."""
    path = dataset_json(folder)
    if not Path(folder).is_dir():
        raise HeadshotError(f"{folder}: dataset folder not found (run `headshot prepare` first)")
    if not path.is_file():
        raise HeadshotError(f"{folder}: no dataset.json; is this a folder written by `headshot prepare`?")
    record = read_json_record(path, DatasetRecord)
    for number, photo in enumerate(record.photos):
        check_inside(path, f"photos.{number}.image", photo.image)
        check_inside(path, f"photos.{number}.mask", photo.mask)
    for photo in record.accepted:
        for relative in (photo.image, photo.mask):
            if relative is None or not (Path(folder) / relative).is_file():
                raise HeadshotError(f"{path}: accepted photo {photo.source} lists a missing file {relative}")
    if not record.accepted:
        raise HeadshotError(f"{path}: no accepted photos to train on")
    return record
