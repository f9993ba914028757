"""Family look-ups for the pipeline stages, over the registry in `headshot.families`.

Kept for the stages' older imports; each family's knowledge lives in its own module.
"""

from __future__ import annotations

from pathlib import Path

from headshot import families as registry
from headshot.families import Family, FamilyName, get_family

__all__ = [
    "Family",
    "FamilyName",
    "family_of_checkpoint_keys",
    "family_of_folder",
    "family_of_pipeline",
    "get_family",
]


class _Registry(dict):
    """A live name -> Family view of the registry (`FAMILIES` in older code)."""

    def __init__(self):
        super().__init__({family.name: family for family in registry.all_families()})


FAMILIES = _Registry()


def family_of_folder(folder: Path) -> str | None:
    """The family name a diffusers folder's model_index.json names, if any."""
    family = registry.family_of_folder(Path(folder))
    return family.name if family else None


def family_of_checkpoint_keys(keys: set[str]) -> str | None:
    family = registry.family_of_checkpoint_keys(keys)
    return family.name if family else None


def family_of_pipeline(pipeline) -> Family | None:
    """The family whose pipeline class `pipeline` is (or derives from)."""
    for family in registry.all_families():
        if isinstance(pipeline, family.pipeline_class):
            return family
    return None
