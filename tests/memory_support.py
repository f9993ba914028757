"""Tiny models of each family's real layout, widened until their tensors dominate a process's memory.

The shipped tiny models hold 3-6 MB of weights: less than a Python process's own resident-set
noise (lazily imported code, allocator arenas, thread stacks), so no honest RSS measurement
can check a memory estimate on them. These are the same pipelines with only the denoiser made
wider (same classes, same component layout, random weights), about 100-200 MB in float32,
still a second or two per training step on a CPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

# Denoiser config changes per family: wider layers, nothing else.
WIDER = {
    "flux": {
        "num_attention_heads": 8,
        "attention_head_dim": 64,
        "axes_dims_rope": [16, 24, 24],
        "num_layers": 3,
        "num_single_layers": 4,
    },
    "sdxl": {"block_out_channels": [256, 512]},
}


def widened_model(tiny: Path, family: str, out: Path) -> Path:
    """A copy of the tiny model folder `tiny` whose denoiser has WIDER[family]'s sizes."""
    import diffusers
    import torch

    from headshot.families import get_family

    out = Path(out)
    if (out / "model_index.json").is_file():
        return out
    shutil.copytree(tiny, out)
    name = get_family(family).denoiser
    cls = getattr(diffusers, "FluxTransformer2DModel" if name == "transformer" else "UNet2DConditionModel")
    config = cls.load_config(out / name)
    torch.manual_seed(0)
    model = cls.from_config({**config, **WIDER[family]})
    shutil.rmtree(out / name)
    model.save_pretrained(out / name)
    return out


def measured_finetune(model: Path, dataset: Path, options: dict, tmp: Path) -> dict:
    """Run `headshot finetune` in a fresh process; training.json's `memory` record.

    glibc keeps freed heap memory for reuse, so a process's resident set stays at its highest
    temporary allocation long after it was freed; MALLOC_MMAP_THRESHOLD_ makes every tensor-sized
    allocation its own mapping, returned to the OS when freed, so the peak resident set is the
    peak of live memory.
    """
    import json
    import os
    import subprocess
    import sys

    import yaml

    config = tmp / "finetune.yaml"
    config.write_text(yaml.safe_dump(options))
    environment = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": os.getcwd()}
    command = [
        sys.executable,
        "-m",
        "headshot",
        "finetune",
        str(dataset),
        "-m",
        str(model),
        "-c",
        str(config),
    ]
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((dataset.parent / "lora" / "training.json").read_text())
    return {**record["memory"], "stderr": result.stderr}
