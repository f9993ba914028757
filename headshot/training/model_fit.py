"""Does a prepared dataset fit the base model chosen for training? Checked before loading
(from the folder's model_index.json) and again once the model is loaded (its resolution)."""

from __future__ import annotations

from pathlib import Path

from headshot.errors import HeadshotError
from headshot.families import family_of_folder


def family_on_disk(source: str) -> str | None:
    """The family of a local diffusers folder, before anything is loaded (None: unknown yet)."""
    path = Path(source).expanduser()
    found = family_of_folder(path) if path.is_dir() else None
    return found.name if found else None


def check_dataset_fits(dataset, folder: Path, model: str, family: str | None, resolution: int | None = None):
    """The dataset was prepared for this family and (once loaded) this resolution."""
    where = folder / "dataset.json"
    if family is not None and family != dataset.family:
        raise HeadshotError(
            f"{where}: the dataset was prepared for {dataset.family} at {dataset.resolution}px, but base "
            f"model '{model}' is {family}; prepare the photos again with -m {model}, or pick a "
            f"{dataset.family} base model"
        )
    if resolution is not None and resolution != dataset.resolution:
        raise HeadshotError(
            f"{where}: the dataset's images are {dataset.resolution}px, but base model '{model}' "
            f"trains at {resolution}px; prepare the photos again with -m {model}"
        )
