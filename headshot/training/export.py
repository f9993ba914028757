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

from headshot.records import atomic_write_bytes
from headshot.training.training_record import LORA_FILE


def lora_layers(pipeline, train_text_encoder: bool, scale: float = 1.0) -> dict[str, dict]:
    """The LoRA tensors of each component, in diffusers' naming.

    `scale` (alpha / rank) is folded into the up-projections: both file formats load
    LoRAs at alpha = rank, so the saved weights must carry the trained scale themselves.
    """
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    def of(module):
        state = convert_state_dict_to_diffusers(get_peft_model_state_dict(module))
        return {
            key: (value * scale if ".up." in key or "lora_B" in key else value).detach().cpu().contiguous()
            for key, value in state.items()
        }

    layers = {"unet_lora_layers": of(pipeline.unet)}
    if train_text_encoder:
        layers["text_encoder_lora_layers"] = of(pipeline.text_encoder)
        if getattr(pipeline, "text_encoder_2", None) is not None:
            layers["text_encoder_2_lora_layers"] = of(pipeline.text_encoder_2)
    return layers


def save_diffusers_lora(pipeline, folder: Path, train_text_encoder: bool, scale: float = 1.0) -> Path:
    """Write `folder/pytorch_lora_weights.safetensors` atomically with diffusers' own writer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=".export-"))
    try:
        type(pipeline).save_lora_weights(
            staging, safe_serialization=True, **lora_layers(pipeline, train_text_encoder, scale)
        )
        os.replace(staging / LORA_FILE, folder / LORA_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder / LORA_FILE


def save_kohya_lora(diffusers_file: Path, out: Path) -> Path:
    """Convert the saved diffusers LoRA to the kohya layout (alpha = rank per module)."""
    from diffusers.utils import convert_all_state_dict_to_peft, convert_state_dict_to_kohya
    from safetensors.torch import load_file, save

    state = load_file(diffusers_file)
    kohya = convert_state_dict_to_kohya(convert_all_state_dict_to_peft(state))
    kohya = {key: value.contiguous() for key, value in kohya.items()}
    atomic_write_bytes(out, save(kohya, metadata={"format": "pt", "ss_network_module": "networks.lora"}))
    return out
