"""The accelerate side of a training run: the Accelerator, the frozen weights' dtype, release.

Kept apart from finetune.py so that the run's set-up reads top to bottom there.
"""

from __future__ import annotations

import torch

from headshot.errors import HeadshotError


def weight_dtype(accelerator):
    """The dtype the frozen base is loaded in: the mixed-precision dtype, else float32."""
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(accelerator.mixed_precision, torch.float32)


def device_type() -> str:
    """Where training runs: cuda when present, else cpu (accelerate's choice, known before it starts)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def make_accelerator(config):
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    if precision == "fp16" and not torch.cuda.is_available():
        raise HeadshotError("option 'mixed_precision': fp16 needs a CUDA GPU; use bf16 or no on a CPU")
    # SDXL's first text encoder skips its last layer's output: DDP must allow unused LoRA weights.
    ddp = DistributedDataParallelKwargs(find_unused_parameters=config.train_text_encoder)
    # cpu=True on a machine without CUDA: several processes then form a gloo (MULTI_CPU) group.
    return Accelerator(mixed_precision=precision, kwargs_handlers=[ddp], cpu=not torch.cuda.is_available())


def planned_dtype(config):
    """The dtype `weight_dtype` will give, known before the Accelerator exists (the memory plan)."""
    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "no"
    return {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision, torch.float32)


def release_accelerator() -> None:
    # accelerate keeps its state in a process-wide singleton; reset it so a later run in
    # the same process (the `run` command, tests) may choose another precision.
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=False)
