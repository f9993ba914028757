"""Checkpoints: everything a killed run needs to continue exactly where it was.

`lora/checkpoints/step-000100/` holds the trainable LoRA tensors, the optimizer and
learning-rate scheduler states, the RNG states and `state.json` (step, losses so far,
the result-deciding settings). A checkpoint is written into a hidden temporary
folder and renamed into place, so a kill during the write leaves the previous one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

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


def read_checkpoint(folder: Path) -> Checkpoint:
    try:
        data = json.loads((folder / "state.json").read_text())
        lora = load_file(folder / "lora.safetensors")
    except (OSError, ValueError) as exc:
        message = f"{folder}: unreadable checkpoint ({exc}); delete it to resume from an older one"
        raise HeadshotError(message) from None
    state = TrainingState(
        step=data["step"],
        losses=data["losses"],
        wall_time_s=data["wall_time_s"],
        step_seconds=data.get("step_seconds", []),
    )
    return Checkpoint(folder, state, data["settings"], lora)


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
    return ", ".join(f"{name}: {saved.get(name)!r} -> {settings[name]!r}" for name in changed)


def restore_training_state(checkpoint: Checkpoint, optimizer, lr_scheduler) -> None:
    """Optimizer, LR scheduler and RNG states (the LoRA tensors are loaded by the caller)."""
    # weights_only: plain tensors and numbers, never arbitrary pickled objects.
    optimizer.load_state_dict(torch.load(checkpoint.folder / "optimizer.pt", weights_only=True))
    lr_scheduler.load_state_dict(torch.load(checkpoint.folder / "scheduler.pt", weights_only=True))
    rng = load_file(checkpoint.folder / "rng.safetensors")
    torch.set_rng_state(rng["torch_cpu"])
    cuda_states = [rng[key] for key in sorted(rng) if key.startswith("torch_cuda_")]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
