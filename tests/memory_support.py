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
