"""Checkpoints: everything a killed run needs to continue exactly where it was.

`lora/checkpoints/step-000100/` holds the trainable LoRA tensors, the optimizer and
learning-rate scheduler states, the RNG states and `state.json` (step, losses so far,
the result-deciding settings). A checkpoint is written into a hidden temporary
folder and renamed into place, so a kill during the write leaves the previous one.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from headshot.bounded_io import read_json_object
from headshot.errors import HeadshotError
from headshot.records import atomic_write_json


@dataclass
class TrainingState:
    step: int = 0  # optimizer steps done
    losses: list[float] = field(default_factory=list)  # one per step
    wall_time_s: float = 0.0  # summed over every run that contributed
    step_seconds: list[float] = field(default_factory=list)  # duration of each step (bench, logs)
    num_processes: int = 1


def checkpoint_folder(checkpoints: Path, step: int) -> Path:
    return Path(checkpoints) / f"step-{step:06d}"


def checkpoint_step(folder: Path) -> int | None:
    """The training step a checkpoint folder's name says (step-000100 -> 100), else None."""
    match = re.fullmatch(r"step-(\d+)", Path(folder).name)
    return int(match.group(1)) if match else None


def latest_checkpoint(checkpoints: Path) -> Path | None:
    found = sorted(Path(checkpoints).glob("step-*/state.json")) if Path(checkpoints).is_dir() else []
    return found[-1].parent if found else None


def _rng_states() -> dict[str, torch.Tensor]:
    states = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            states[f"torch_cuda_{index}"] = state
    return states


def save_checkpoint(
    checkpoints: Path,
    *,
    state: TrainingState,
    lora: dict[str, torch.Tensor],
    optimizer,
    lr_scheduler,
    settings: dict,
    keep: int,
) -> Path:
    final = checkpoint_folder(checkpoints, state.step)
    staging = Path(checkpoints) / f".{final.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(lora, staging / "lora.safetensors")
    save_file(_rng_states(), staging / "rng.safetensors")
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(lr_scheduler.state_dict(), staging / "scheduler.pt")
    # state.json last: its presence marks the checkpoint complete.
    atomic_write_json(
        staging / "state.json",
        {
            "step": state.step,
            "losses": state.losses,
            "wall_time_s": state.wall_time_s,
            "step_seconds": state.step_seconds,
            "settings": settings,
        },
    )
    _fsync_folder(staging)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    for old in sorted(Path(checkpoints).glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


@dataclass
class Checkpoint:
    folder: Path
    state: TrainingState
    settings: dict
    lora: dict[str, torch.Tensor]


def _damaged(path: Path, exc: BaseException) -> HeadshotError:
    reason = " ".join(str(exc).split())[:200] or type(exc).__name__
    return HeadshotError(
        f"{path}: unreadable checkpoint file ({reason}); delete {path.parent.name} to resume "
        "from an older checkpoint, or start over with --restart"
    )


def read_checkpoint(folder: Path) -> Checkpoint:
    """state.json (bounded, every field type-checked) and the LoRA tensors; errors name the file."""
    state_file = folder / "state.json"
    try:
        data = read_json_object(state_file)
        state = TrainingState(
            step=int(data["step"]),
            losses=[float(v) for v in data["losses"]],
            wall_time_s=float(data["wall_time_s"]),
            step_seconds=[float(v) for v in data.get("step_seconds", [])],
        )
        settings = data["settings"]
        if not isinstance(settings, dict) or state.step < 0:
            raise ValueError("'settings' must be a mapping and 'step' not negative")
    except HeadshotError as exc:
        raise _damaged(state_file, exc) from None
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise _damaged(state_file, ValueError(f"field {exc}")) from None
    try:
        lora = load_file(folder / "lora.safetensors")
    except Exception as exc:  # safetensors raises its own error type for damaged headers
        raise _damaged(folder / "lora.safetensors", exc) from None
    return Checkpoint(folder, state, settings, lora)


def checkpoint_lora_layers(lora: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """A checkpoint's LoRA tensors as the state dict diffusers' `load_lora_weights` takes.

    A checkpoint keeps the trainable tensors under their parameter names (component prefix,
    peft's adapter name inside, alpha/rank not applied: what resuming needs). The export
    folds `scale` (alpha / rank) into the up-projections; so does this, so a checkpoint
    renders exactly as the LoRA exported at that step would.
    """
    layers = {}
    for name, tensor in lora.items():
        key = re.sub(r"\.(lora_[AB])\.default\.", r".\1.", name)
        layers[key] = tensor * scale if ".lora_B." in key else tensor
    return layers


# Settings renamed since a checkpoint may have been written: old name -> new name.
_RENAMED = {"unet_lora_layers": "lora_layers"}


def changed_settings(checkpoint: Checkpoint, settings: dict) -> str | None:
    """What differs between the checkpoint's settings and these, e.g. "lr: 0.001 -> 0.5".

    A checkpoint written before an option existed counts as having had its default; one
    written under an option's old name is read under the new one.
    """
    from headshot.training.finetune_config import FinetuneConfig

    saved = {_RENAMED.get(name, name): value for name, value in checkpoint.settings.items()}
    for name in settings:
        field = FinetuneConfig.model_fields.get(name)
        if name not in saved and field is not None:
            saved[name] = field.default
    changed = [name for name in settings if saved.get(name) != settings[name]]
    if not changed:
        return None
    return ", ".join(f"{name}: {_shown(saved.get(name))} -> {_shown(settings[name])}" for name in changed)


def _shown(value: object) -> str:
    """A setting as a person reads it: a fingerprint (SHA-256) by its first digits."""
    from headshot.terminal import short_hash

    return short_hash(value) if isinstance(value, str) and len(value) == 64 else repr(value)


def restore_training_state(checkpoint: Checkpoint, optimizer, lr_scheduler) -> None:
    """Optimizer, LR scheduler and RNG states (the LoRA tensors are loaded by the caller)."""
    # weights_only: plain tensors and numbers, never arbitrary pickled objects.
    for name, target in (("optimizer.pt", optimizer), ("scheduler.pt", lr_scheduler)):
        try:
            target.load_state_dict(torch.load(checkpoint.folder / name, weights_only=True))
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError...
            raise _damaged(checkpoint.folder / name, exc) from None
    try:
        rng = load_file(checkpoint.folder / "rng.safetensors")
        torch.set_rng_state(rng["torch_cpu"])
    except Exception as exc:
        raise _damaged(checkpoint.folder / "rng.safetensors", exc) from None
    cuda_states = [rng[key] for key in sorted(rng) if key.startswith("torch_cuda_")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
