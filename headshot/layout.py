"""The folder layout of one subject's run: stages talk through these folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator

from headshot.errors import HeadshotError

# fullmatch: `$` alone would let a trailing newline through.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# The diffusers LoRA file in lora/ (the name diffusers' load_lora_weights looks for).
LORA_FILE = "pytorch_lora_weights.safetensors"
SAFE_NAME_RULE = "use letters, digits, '.', '_' and '-' (at most 64), starting with a letter or digit"


def is_safe_name(name: str) -> bool:
    return isinstance(name, str) and bool(_SAFE_NAME.fullmatch(name)) and ".." not in name


def check_safe_name(name: str, what: str) -> str:
    """Names that become folder names must not escape their parent folder, nor carry
    characters a terminal or another program would act on."""
    if not is_safe_name(name):
        raise HeadshotError(f"{what} {name!r} is not a safe folder name: {SAFE_NAME_RULE}")
    return name


def _safe_name_value(name: str) -> str:
    if not is_safe_name(name):
        raise ValueError(f"not a safe folder name: {SAFE_NAME_RULE}")
    return name


# A record's or config's field that names a folder or file (subject, template name).
SafeName = Annotated[str, AfterValidator(_safe_name_value)]


@dataclass(frozen=True)
class SubjectLayout:
    """outputs/<subject>/{dataset,lora,renders,headshots,audit}/"""

    root: Path

    @classmethod
    def for_subject(cls, outputs: Path, subject: str) -> SubjectLayout:
        return cls(Path(outputs) / check_safe_name(subject, "subject"))

    @classmethod
    def of_stage_folder(cls, stage_folder: Path) -> SubjectLayout:
        """The layout a stage folder (e.g. outputs/ada/dataset) belongs to; its folder's name
        is the subject's name, checked as `prepare --subject` checks it."""
        root = Path(stage_folder).resolve().parent
        check_safe_name(root.name, f"{stage_folder}: subject folder")
        return cls(root)

    @property
    def subject(self) -> str:
        return self.root.name

    @property
    def dataset(self) -> Path:
        return self.root / "dataset"

    @property
    def lora(self) -> Path:
        return self.root / "lora"

    @property
    def renders(self) -> Path:
        return self.root / "renders"

    @property
    def headshots(self) -> Path:
        return self.root / "headshots"

    @property
    def audit(self) -> Path:
        return self.root / "audit"
