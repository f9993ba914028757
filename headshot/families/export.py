"""The trained LoRA as files users load elsewhere.

- `pytorch_lora_weights.safetensors`: diffusers' own format, written by the pipeline
  class's `save_lora_weights`, so plain `pipe.load_lora_weights(folder)` loads it.
- `kohya/<subject>.safetensors`: the kohya-ss key layout (lora_unet_*, lora_te1_*,
  lora_te2_*, with alphas) that AUTOMATIC1111 and ComfyUI load. It sits in a
  subfolder so that diffusers, pointed at `lora/`, never guesses the wrong file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from headshot.layout import LORA_FILE
from headshot.records import atomic_write_bytes


def peft_layers(
    pipeline, train_text_encoder: bool, scale: float = 1.0, denoiser: str = "unet"
) -> dict[str, dict]:
    """The LoRA tensors of each trained component (the denoiser, text_encoder, text_encoder_2), peft naming.

    `scale` (alpha / rank) is folded into the up-projections: both file formats load
    LoRAs at alpha = rank, so the saved weights must carry the trained scale themselves.
    """
    from peft.utils import get_peft_model_state_dict

    names = [denoiser]
    if train_text_encoder:
        names += [n for n in ("text_encoder", "text_encoder_2") if getattr(pipeline, n, None) is not None]
    return {
        name: {
            key: (value * scale if "lora_B" in key else value).detach().cpu().contiguous()
            for key, value in get_peft_model_state_dict(getattr(pipeline, name)).items()
        }
        for name in names
    }


def save_diffusers_lora(
    pipeline, folder: Path, train_text_encoder: bool, scale: float = 1.0, denoiser: str = "unet"
) -> Path:
    """Write `folder/pytorch_lora_weights.safetensors` atomically with diffusers' own writer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    layers = {
        f"{name}_lora_layers": _diffusers_naming(state)
        for name, state in peft_layers(pipeline, train_text_encoder, scale, denoiser).items()
    }
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".export-"))
    try:
        type(pipeline).save_lora_weights(staging, safe_serialization=True, **layers)
        os.replace(staging / LORA_FILE, folder / LORA_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / LORA_FILE


def _diffusers_naming(state: dict) -> dict:
    from diffusers.utils import convert_state_dict_to_diffusers

    converted = convert_state_dict_to_diffusers(state)
    # The converter only renames attention projections; with LoRA on convolutions too the
    # result would mix two namings, which diffusers loads only partly. Keep peft's naming
    # then: diffusers loads a pure peft-named file as is.
    if any(".lora_A." in key or ".lora_B." in key for key in converted):
        return state
    return converted


def save_kohya_lora(
    pipeline, out: Path, train_text_encoder: bool, scale: float = 1.0, denoiser: str = "unet"
) -> Path:
    """The same LoRA in the kohya layout (lora_unet_*, lora_te1_*, lora_te2_*; alpha = rank).

    The metadata carries `ss_base_model_version` as kohya's trainer writes it: AUTOMATIC1111
    files a LoRA under SD1 or SDXL by it, and hides one that does not match the checkpoint.
    """
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import save

    from headshot.families import family_of_pipeline

    prefixed = {
        f"{name}.{_clip_layout_key(name, key)}": value
        for name, state in peft_layers(pipeline, train_text_encoder, scale, denoiser).items()
        for key, value in state.items()
    }
    kohya = {key: value.contiguous() for key, value in convert_state_dict_to_kohya(prefixed).items()}
    metadata = {"format": "pt", "ss_network_module": "networks.lora"}
    family = family_of_pipeline(pipeline)
    if family is not None:
        metadata["ss_base_model_version"] = family.kohya_base_model_version
    atomic_write_bytes(out, save(kohya, metadata=metadata))
    return out


def kohya_module_names(denoiser: str, modules: list[str]) -> set[str]:
    """The kohya names (`lora_unet_...`) `save_kohya_lora` gives the LoRA of these denoiser modules:
    diffusers' own converter run on their key names (shape-only tensors)."""
    import torch
    from diffusers.utils import convert_state_dict_to_kohya

    keys = {}
    for module in modules:
        keys[f"{denoiser}.{module}.lora_A.weight"] = torch.empty(1, 1, device="meta")
        keys[f"{denoiser}.{module}.lora_B.weight"] = torch.empty(1, 1, device="meta")
    return {key.split(".")[0] for key in convert_state_dict_to_kohya(keys)}


def _clip_layout_key(component: str, key: str) -> str:
    """A text-encoder key as named in the original CLIP layout (`text_model.encoder.layers...`).

    ComfyUI and AUTOMATIC1111 derive their LoRA names (`lora_te1_text_model_encoder_layers_N_*`)
    from that layout. transformers 5 dropped the `text_model` level of `CLIPTextModel` (not of
    `CLIPTextModelWithProjection`), so the name is restored whatever the installed version.
    """
    if component.startswith("text_encoder") and key.startswith("encoder."):
        return f"text_model.{key}"
    return key
