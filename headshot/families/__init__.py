"""The model-family registry: every family headshot supports, by name.

A family module defines one `Family` subclass and calls `register` on an instance;
importing this package imports each module, so the registry is complete once any stage
asks. Records and configs validate a family name with `FamilyName` (against the
registry, not a copied Literal). Adding a family: one module here, its tiny model (a
`tiny` method built from the parts in `tiny.py`; a larger one in `<family>_tiny.py`), its
presets under configs/models/, and its entry in tests/family_cases.py.

What the families' hooks call lives beside them, so that this folder imports no stage: the
training objectives (objectives.py), the LoRA file formats (export*.py) and the attention
recorders the study uses (attention.py, joint_attention.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from headshot.errors import HeadshotError
from headshot.families.base import Family, PromptEmbeddings, read_model_index

_REGISTRY: dict[str, Family] = {}
# Names older records and configs used for a family that has since been renamed.
_OLD_NAMES: dict[str, str] = {"flux1": "flux", "flux-dev": "flux"}


def register(family: Family) -> Family:
    _REGISTRY[family.name] = family
    return family


def family_names() -> list[str]:
    return list(_REGISTRY)


def get_family(name: str) -> Family:
    name = _OLD_NAMES.get(name, name)
    if name not in _REGISTRY:
        raise HeadshotError(f"unknown model family '{name}' (expected one of {', '.join(_REGISTRY)})")
    return _REGISTRY[name]


def all_families() -> list[Family]:
    return list(_REGISTRY.values())


def _check_name(value: str) -> str:
    value = _OLD_NAMES.get(value, value)
    if value not in _REGISTRY:
        raise ValueError(f"unknown model family '{value}' (expected one of {', '.join(_REGISTRY)})")
    return value


FamilyName = Annotated[str, AfterValidator(_check_name)]


def family_of_folder(folder: Path) -> Family | None:
    """The family whose pipeline class a diffusers folder's model_index.json names."""
    index = read_model_index(folder)
    if index is None:
        return None
    return next((f for f in _REGISTRY.values() if f.recognise(index, None)), None)


def family_of_checkpoint_keys(keys: set[str]) -> Family | None:
    """The family a single-file checkpoint's tensor names mark (first match in registry order)."""
    return next((f for f in _REGISTRY.values() if f.recognise(None, keys)), None)


def family_of_pipeline(pipeline) -> Family | None:
    """The family whose pipeline class a loaded `pipeline` is (or derives from)."""
    return next((f for f in _REGISTRY.values() if isinstance(pipeline, f.pipeline_class)), None)


# Each module registers its family on import; this order is the order users see.
MODULES = ("sd15", "sdxl", "flux1", "flux2_klein")
for _module in MODULES:
    importlib.import_module(f"headshot.families.{_module}")

__all__ = [
    "Family",
    "FamilyName",
    "PromptEmbeddings",
    "all_families",
    "family_names",
    "family_of_checkpoint_keys",
    "family_of_folder",
    "family_of_pipeline",
    "get_family",
    "register",
]
