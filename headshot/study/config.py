"""Options of `headshot study`: one typed config, validated at the edge (see configs/study.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from headshot.config import StrictModel, load_config
from headshot.study.refine_compare import RefineComparison

# `{identifier}` and `{class_noun}` are filled from the LoRA's training.json (or sks/person).
DEFAULT_PROMPT = (
    "a professional headshot photo of {identifier} {class_noun} with hair, earrings and glasses, "
    "studio background"
)


class SweepConfig(StrictModel):
    """The knobs swept, each a list of values; the LoRA knobs apply only with a LoRA."""

    enabled: bool = True
    # grid: every combination of the knobs; axes: one knob at a time, the others at the study's values.
    mode: Literal["grid", "axes"] = "grid"
    guidance_scales: list[float] = Field(default=[3.0, 5.0, 7.5, 10.0], min_length=1)
    # null: a third, two thirds and all of the study's own steps (10, 20, 30 at --steps 30), so
    # the sweep follows --steps; a list: exactly those.
    steps: list[int] | None = Field(default=None, min_length=1)
    lora_scales: list[float] = Field(default=[0.0, 0.5, 1.0], min_length=1)
    # Sweep the training checkpoints in lora/checkpoints/ (each a folder holding a LoRA file).
    checkpoints: bool = True
    # Seeds rendered at every grid point; metrics are averaged over them. Empty: the study's seed.
    seeds: list[int] = Field(default_factory=list)

    @field_validator("guidance_scales", "lora_scales")
    @classmethod
    def _non_negative(cls, values: list[float]) -> list[float]:
        if any(value < 0 for value in values):
            raise ValueError("values must be >= 0")
        return values

    @field_validator("steps")
    @classmethod
    def _positive_steps(cls, values: list[int] | None) -> list[int] | None:
        if values is not None and any(value < 1 for value in values):
            raise ValueError("steps must be >= 1")
        return values


class StudyConfig(StrictModel):
    lora: Path | None = None  # a folder written by `headshot finetune`; None: the base model alone
    base_model: str | None = None  # default: the LoRA's base model, else DEFAULT_BASE_MODEL
    subject: str | None = None  # output folder name when there is no LoRA
    # The subject's `headshot prepare` folder, the yardstick of the audit's metrics.
    # Default: the dataset/ next to the LoRA (or OUTPUTS/<subject>/dataset), when it exists.
    dataset: Path | None = None
    outputs: Path = Path("outputs")
    out: Path | None = None  # default: OUTPUTS/<subject>/audit/study
    prompt: str = DEFAULT_PROMPT
    negative_prompt: str = ""
    tokens: list[str] = Field(default=["{identifier}", "earrings", "glasses", "hair"], min_length=1)
    seed: int = 0
    steps: int = Field(default=30, ge=1)
    guidance_scale: float = Field(default=7.0, ge=0)
    lora_scale: float = Field(default=1.0, ge=0)
    size: int | None = Field(default=None, ge=64)  # default: the model's native resolution
    device: str | None = None  # default: cuda when available, else cpu
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    allow_pickle: bool = False
    # Which image metrics to compute (names from `available_metrics()`); empty: all of them.
    metrics: list[str] = Field(default_factory=list)
    trajectory: bool = True
    attention: bool = True
    frame_size: int = Field(default=256, ge=16)  # contact-sheet tile size (never upscaled)
    sheet_columns: int = Field(default=8, ge=1)
    sweep: SweepConfig = Field(default_factory=SweepConfig)
    # Before/after the face-detail pass for the same seeds (off by default: it renders more).
    refine: RefineComparison = Field(default_factory=RefineComparison)

    @field_validator("tokens")
    @classmethod
    def _non_empty_tokens(cls, values: list[str]) -> list[str]:
        cleaned = [value.strip() for value in values]
        if any(not value for value in cleaned):
            raise ValueError("token words must not be empty")
        return cleaned


def load_study_config(path: Path | None, **overrides) -> StudyConfig:
    """Defaults < YAML file < command line (options given as None are 'not given')."""
    return load_config(StudyConfig, path, overrides)
