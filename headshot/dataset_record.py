"""The schema of `dataset/dataset.json`: the contract between `prepare` and later stages.

`prepare` writes it; `finetune` reads the accepted images and masks; ranking and the
audit read the identity embeddings. Paths inside are relative to the dataset folder,
and source photos are named by file name only (never their folder, never EXIF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field

from headshot.config import Finite, Resolution, Sha256, StrictModel, Word, read_json_record
from headshot.errors import HeadshotError
from headshot.families import FamilyName
from headshot.layout import SafeName
from headshot.records import check_inside

DATASET_FORMAT = 1

Verdict = Literal["accepted", "rejected"]


Box = Annotated[list[int], Field(min_length=4, max_length=4)]  # left, top, right, bottom
Point = Annotated[list[Finite], Field(min_length=2, max_length=2)]


class PhotoRecord(StrictModel):
    # The file name of the source photo, no folders: as found on disk, so it may hold any
    # character (it is escaped wherever it is shown, headshot.terminal).
    source: str = Field(max_length=1024)
    sha256: Sha256
    verdict: Verdict
    reason_code: Word | None = None  # e.g. no_face, many_faces, too_small, blurred, duplicate
    reason: str | None = Field(None, max_length=2000)  # human sentence, shown in the summary table
    width: int | None = Field(None, ge=1, le=1_000_000)
    height: int | None = Field(None, ge=1, le=1_000_000)
    face_box: Box | None = None  # in the upright source
    landmarks5: list[Point] | None = Field(None, min_length=5, max_length=5)
    crop_box: Box | None = None
    image: str | None = Field(None, max_length=1024)  # images/<name>.png, for accepted photos
    mask: str | None = Field(None, max_length=1024)  # masks/<name>.png, white = face region
    embedding: list[Finite] | None = Field(None, min_length=128, max_length=128)  # dlib identity
    # prepare writes: faces (count), face_score, focus, relative_focus, brightness, clipped,
    # yaw (degrees), upscale, identity_distance, duplicate_difference (see configs/prepare.yaml)
    metrics: dict[str, Finite] = Field(default_factory=dict)


class DatasetRecord(StrictModel):
    format: int = Field(DATASET_FORMAT, ge=1, le=DATASET_FORMAT)
    subject: SafeName
    family: FamilyName  # a registered family (headshot.families)
    resolution: Resolution
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
