"""`headshot plan`: the memory a model needs for training and rendering, before anyone downloads it.

Why: a FLUX.1-dev download is 30 GB, and finding out after it that training needs 60 GB is the
most expensive way to learn it. The plan is the same estimate `finetune` and `generate` print
before they load (training/memory_check.py, pipelines/render_precision.py), made from the
model's own files when they are on disk (a local folder, the Hugging Face cache), else from the
shipped full-size configs (configs/full-size/), offline and on any machine: `--device cuda`
plans for a GPU from a laptop.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from headshot import memory_plan as mp
from headshot.errors import HeadshotError

DTYPES = {"fp16": "float16", "bf16": "bfloat16", "no": "float32"}


@dataclass
class PlanRequest:
    model: str
    resolution: int | None = None  # default: the model's native size
    batch_size: int = 1
    rank: int = 16
    quantize_base: str = "none"
    gradient_checkpointing: bool = False
    mixed_precision: str = "auto"  # auto: bf16 on cuda, no (float32) on cpu
    device: str = "cuda"
    prior_preservation: bool = True
    max_sequence_length: int | None = None  # prompt tokens (FLUX families); None: the config's default


@dataclass
class ModelFiles:
    folder: Path
    family: object
    where: str  # said to the user: which files the plan was made from


def locate(model: str, scratch: Path) -> ModelFiles:
    """The model's files on this machine, else its shipped full-size configs written to `scratch`."""
    from headshot.families import family_of_folder
    from headshot.full_size import find_shipped, write_config_folder
    from headshot.models.model_spec import is_hub_id, resolve_base_model

    spec = resolve_base_model(model)
    path = Path(spec.source).expanduser()
    if (path / "model_index.json").is_file():
        return ModelFiles(path, _family(family_of_folder(path), path), f"the model's files in {path}")
    if path.suffix == ".safetensors" and path.is_file():
        raise HeadshotError(
            f"{path}: a single-file checkpoint: plan its diffusers folder, or the preset of its family"
        )
    if not is_hub_id(spec.source):
        raise HeadshotError(f"base model '{model}' not found: no diffusers folder at {path.resolve()}")
    cached = _cached_snapshot(spec.source, spec.revision)
    if cached is not None:
        return ModelFiles(cached, _family(family_of_folder(cached), cached), f"the cached download {cached}")
    shipped = find_shipped(spec.preset or spec.source) or find_shipped(spec.source)
    if shipped is None:
        raise HeadshotError(
            f"base model '{model}': not on this machine and no shipped full-size configs for "
            f"'{spec.source}'; download it first (its configs are enough) or name a preset"
        )
    folder = write_config_folder(shipped, scratch / shipped.name)
    return ModelFiles(
        folder,
        _family(family_of_folder(folder), folder),
        f"the shipped full-size configs of {shipped.source}",
    )


def _family(family, folder: Path):
    if family is None:
        raise HeadshotError(f"{folder}/model_index.json: not a pipeline of a supported family")
    return family


def _cached_snapshot(repo: str, revision: str | None) -> Path | None:
    """The hub id's snapshot in the Hugging Face cache (model_index.json present), looked up offline."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "model_index.json", revision=revision)
    return Path(found).parent if isinstance(found, str) else None


def make_plan(request: PlanRequest) -> dict:
    """{"model", "family", "from", "training": {peak_gib, parts, ...}, "render": {...}} for the request."""
    import torch

    from headshot.pipelines.render_precision import RenderPrecision, estimate_render
    from headshot.training.finetune_config import FinetuneConfig
    from headshot.training.memory_check import estimate_finetune

    if request.device not in ("cuda", "cpu"):
        raise HeadshotError(f"--device: expected cuda or cpu, not '{request.device}'")
    precision = request.mixed_precision
    if precision == "auto":
        precision = "bf16" if request.device == "cuda" else "no"
    if precision not in DTYPES:
        raise HeadshotError(f"--mixed-precision: expected auto, no, fp16 or bf16, not '{precision}'")
    dtype = getattr(torch, DTYPES[precision])
    tokens = {"max_sequence_length": request.max_sequence_length} if request.max_sequence_length else {}
    with tempfile.TemporaryDirectory(prefix="headshot-plan-") as scratch:
        files = locate(request.model, Path(scratch))
        family = files.family
        resolution = (
            request.resolution or family.resolution_from_folder(files.folder) or family.native_resolution
        )
        if resolution % family.size_multiple:
            raise HeadshotError(f"--resolution: {family.name} needs a multiple of {family.size_multiple}")
        config = FinetuneConfig(
            base_model=request.model,
            batch_size=request.batch_size,
            rank=request.rank,
            quantize_base=request.quantize_base,
            gradient_checkpointing=request.gradient_checkpointing,
            mixed_precision=precision,
            prior_preservation=request.prior_preservation,
            **tokens,
        )
        family.check_training_options(config, "plan")
        training = estimate_finetune(files.folder, family, config, resolution, request.device, dtype)
        if training.activations is None:
            raise HeadshotError(f"{files.where}: {training.note}")
        render_precision = RenderPrecision(
            request.quantize_base, {"no": "fp32"}.get(precision, precision), None
        )
        lora_bytes = training.lora_parameters * 4  # saved in float32
        render_peak, render_weights, render_parts = estimate_render(
            files.folder, family, render_precision, lora_bytes, _NoOffload(), 1, resolution
        )
    return {
        "model": request.model,
        "family": family.name,
        "from": files.where,
        "device": request.device,
        "resolution": resolution,
        "dtype": DTYPES[precision],
        "options": training.options
        | {"rank": request.rank, "prior_preservation": request.prior_preservation},
        "training": {
            "peak_gib": _gib(training.peak),
            "parts": {
                **{f"weights.{name}": _gib(size) for name, size in training.weights.items()},
                "lora_state": _gib(training.lora_state),
                "activations": _gib(training.activations),
                "backward_working": _gib(training.working),
                "validation_sample": _gib(training.sampling),
            },
            "lora_parameters": training.lora_parameters,
            "frozen_parts_resident": request.device == "cpu",
        },
        "render": {
            "peak_gib": _gib(render_peak),
            "parts": {
                **{f"weights.{name}": _gib(size) for name, size in render_weights.items()},
                "lora": _gib(render_parts["lora"]),
                "activations": _gib(max(render_parts["denoiser_call"], render_parts["vae_decode"])),
                "denoiser_call": _gib(render_parts["denoiser_call"]),
                "vae_decode": _gib(render_parts["vae_decode"]),
            },
        },
    }


class _NoOffload:
    cpu_offload = "none"


def _gib(size: int) -> float:
    return round(size / mp.GIB, 3)


def describe(plan: dict) -> list[str]:
    """The plan as lines for a terminal."""
    options = plan["options"]
    lines = [
        f"{plan['model']} ({plan['family']}), from {plan['from']}",
        f"{plan['resolution']} px, batch {options['batch_size']}, rank {options['rank']}, {plan['dtype']}, "
        f"quantize_base {options['quantize_base']}, gradient checkpointing "
        f"{'on' if options['gradient_checkpointing'] else 'off'}, on {plan['device']}",
    ]
    for stage in ("training", "render"):
        lines.append(f"{stage}: peak {plan[stage]['peak_gib']:.2f} GiB")
        width = max(len(name) for name in plan[stage]["parts"])
        lines += [f"  {name:<{width}}  {size:8.2f} GiB" for name, size in plan[stage]["parts"].items()]
    if plan["device"] == "cuda":
        lines.append(
            "training's peak on a GPU: the largest of caching the inputs (all weights), the training "
            "steps (denoiser, LoRA state, activations) and the validation samples (all weights, LoRA)"
        )
    if not options["gradient_checkpointing"]:
        lines.append(
            "--gradient-checkpointing recomputes the activations in the backward pass: far less memory"
        )
    return lines
