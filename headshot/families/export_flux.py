"""A FLUX LoRA as files users load elsewhere.

- `pytorch_lora_weights.safetensors`: diffusers' format (`transformer.<module>.lora_A/B`),
  written by `FluxPipeline.save_lora_weights`, which `FluxPipeline.load_lora_weights`
  loads unmodified.
- `comfyui/<subject>.safetensors`: for ComfyUI's LoraLoader: one `lora_transformer_<module
  with underscores>` entry per LoRA layer, with `lora_down`, `lora_up` and `alpha` (= rank:
  the trained alpha / rank scale is folded into the up-projection). ComfyUI maps these
  names onto its BFL-layout model through its diffusers-to-BFL table (fused qkv slices
  for q, k and v), the same table it uses for diffusers-named FLUX LoRAs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch

from headshot.families.export import peft_layers
from headshot.layout import LORA_FILE
from headshot.records import atomic_write_bytes


def save_flux_diffusers_lora(pipeline, folder: Path, scale: float = 1.0) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers = peft_layers(pipeline, False, scale, denoiser="transformer")["transformer"]
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".export-"))
    try:
        type(pipeline).save_lora_weights(staging, transformer_lora_layers=layers, safe_serialization=True)
        os.replace(staging / LORA_FILE, folder / LORA_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / LORA_FILE


def comfyui_name(module: str) -> str:
    """ComfyUI's name for the LoRA of a diffusers FLUX.1 transformer module."""
    return "lora_transformer_" + module.replace(".", "_")


def comfyui_state(pipeline, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """The LoRA in ComfyUI's `lora_transformer_*` naming, with alphas."""
    layers = peft_layers(pipeline, False, scale, denoiser="transformer")["transformer"]
    state: dict[str, torch.Tensor] = {}
    for key, value in layers.items():
        module, _, part = key.rpartition(".lora_")
        name = comfyui_name(module)
        if part == "A.weight":
            state[f"{name}.lora_down.weight"] = value
            state[f"{name}.alpha"] = torch.tensor(float(value.shape[0]))
        elif part == "B.weight":
            state[f"{name}.lora_up.weight"] = value
    return state


def save_comfyui_lora(pipeline, out: Path, scale: float = 1.0) -> Path:
    from safetensors.torch import save

    from headshot.families import family_of_pipeline

    metadata = {"format": "pt", "ss_network_module": "networks.lora_flux"}
    family = family_of_pipeline(pipeline)
    if family is not None and family.kohya_base_model_version:
        metadata["ss_base_model_version"] = family.kohya_base_model_version
    state = {key: value.contiguous() for key, value in comfyui_state(pipeline, scale).items()}
    atomic_write_bytes(Path(out), save(state, metadata=metadata))
    return Path(out)
