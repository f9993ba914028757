"""Options of `headshot generate` (configs/generate.yaml documents each one)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from headshot.config import MAX_SEED, Seed, StrictModel
from headshot.pipelines.refine import RefineOptions


class PerformanceOptions(StrictModel):
    """Memory/speed switches for the GPU box; the README says when to use each."""

    device: str = "auto"  # auto: cuda when present (per accelerate process), else cpu
    # auto: on CUDA the dtype the LoRA was trained in (training.json; fp16 for older LoRAs), fp32 on CPU
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = "auto"
    attention: Literal["sdpa", "sliced"] = "sdpa"
    vae_tiling: bool = False
    cpu_offload: Literal["none", "model", "sequential"] = "none"
    compile: bool = False
    quantize_base: Literal["auto", "none", "int8", "fp8", "nf4"] = Field(
        "auto",
        description="the frozen denoiser's weights: auto (what training.json records, the precision the "
        "validation samples were rendered at), none, int8, fp8 (torchao) or nf4 (bitsandbytes, CUDA)",
    )
    memory_check: bool = True  # stop before loading when the weights do not fit the free memory


class RankingOptions(StrictModel):
    top_k: int = Field(2, ge=0, le=1000)  # delivered per template
    require_face: bool = True
    # Drop candidates farther from the subject than this many times the spread of
    # the subject's own photos (1.0 = as far as their most unusual real photo).
    # null switches the check off (only sensible for the tiny demo models).
    max_relative_distance: float | None = Field(1.5, gt=0)
    # Flag a candidate whose embedding is nearer than this to one single training
    # photo (dlib units; two photos of one person are typically 0.3-0.5 apart).
    copy_distance: float = Field(0.2, ge=0)
    drop_copies: bool = False
    detector: Literal["hog", "cnn"] = "hog"
    upsample: int = Field(1, ge=0, le=3)
    detect_size: int = Field(640, ge=64, le=8192)  # larger renders are scaled down to this side first
    # Audit every candidate with a face for the artifacts `headshot audit` measures (plastic
    # skin, earrings, warped background, gaze...), against the subject's own photos.
    audit: bool = True
    audit_config: Path | None = None  # a YAML as for `headshot audit` (z limits, photos); else defaults
    # What a flagged artifact does: "fallback" = not delivered while an unflagged candidate of
    # the same template passes; "never" = never delivered; "demote" = it only lowers the score.
    flagged: Literal["fallback", "never", "demote"] = "fallback"
    # Combined score, lower is better: relative likeness distance + artifact_weight x the
    # artifact score (the sum of the z-scores on each metric's artifact side).
    artifact_weight: float = Field(0.1, ge=0)


class GenerateConfig(StrictModel):
    # Shipped template names or paths to template YAML files; empty = every shipped template.
    templates: list[str] = Field(default_factory=list)
    seeds: list[Seed] | None = Field(
        None, max_length=1000
    )  # explicit seeds; otherwise seed_start .. + seeds_per_template
    seeds_per_template: int = Field(4, ge=1, le=1000)
    seed_start: Seed = 0
    batch_size: int = Field(4, ge=1, le=256)
    steps: int | None = Field(None, ge=1, le=1000)  # overrides every template's steps (quick previews)
    size: int | None = Field(None, ge=64, le=4096)  # overrides every template's size
    # Stop after rendering this many new images (a budget); a re-run continues.
    max_images: int | None = Field(None, ge=0, le=10_000_000)
    base_model: str | None = None  # default: the base model named in training.json
    # What to do when the base model's fingerprint differs from training.json's.
    base_model_mismatch: Literal["refuse", "warn"] = "refuse"
    dataset: Path | None = None  # default: the lora folder's sibling dataset/
    signing_config: Path | None = None  # default: development credentials under the outputs root
    # The manifest repository to sign into (a database URL such as postgresql+psycopg://..., or
    # a SQLite file), in place of the signing config's `store`; `headshot batch` sets it.
    store: str | None = None
    allow_pickle: bool = False
    # A run that delivers no headshot (no candidate with a face, all too far from the subject...)
    # is an error (exit 1, the earlier delivery kept); true records the empty delivery instead.
    allow_empty: bool = False
    performance: PerformanceOptions = Field(default_factory=PerformanceOptions)
    ranking: RankingOptions = Field(default_factory=RankingOptions)
    refine: RefineOptions = Field(default_factory=RefineOptions)  # the face-detail pass

    @model_validator(mode="after")
    def _unique_seeds(self) -> GenerateConfig:
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError("'seeds' repeats a seed")
        if self.size is not None and self.size % 8:
            raise ValueError("'size' must be a multiple of 8")
        return self

    def seed_list(self) -> list[int]:
        if self.seeds is not None:
            return list(self.seeds)
        return list(range(self.seed_start, min(self.seed_start + self.seeds_per_template, MAX_SEED + 1)))
