"""The folder layout of one subject's run: stages talk through these folders."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from headshot.errors import HeadshotError

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_safe_name(name: str, what: str) -> str:
    """Names that become folder names must not escape their parent folder."""
    if not _SAFE_NAME.match(name) or ".." in name:
        raise HeadshotError(
            f"{what} '{name}' is not a safe folder name: use letters, digits, '.', '_' "
            "and '-' (at most 64), starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class SubjectLayout:
    """outputs/<subject>/{dataset,lora,renders,headshots,audit}/"""

    root: Path

    @classmethod
    def for_subject(cls, outputs: Path, subject: str) -> SubjectLayout:
        return cls(Path(outputs) / check_safe_name(subject, "subject"))

    @classmethod
    def of_stage_folder(cls, stage_folder: Path) -> SubjectLayout:
        """The layout a stage folder (e.g. outputs/ada/dataset) belongs to."""
        return cls(Path(stage_folder).resolve().parent)

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
