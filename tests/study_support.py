"""A real LoRA folder for study tests, shaped as `headshot finetune` writes it.

A peft LoRA adapter is added to the tiny model's UNet with seeded, non-zero weights (so
it visibly changes the images), saved with the family's own `save_lora_weights`, plus
`training.json` and checkpoint folders holding earlier (weaker) versions of the weights.
"""

from __future__ import annotations

from pathlib import Path

from headshot.records import atomic_write_json, sha256_file
from headshot.training.training_record import LORA_FILE, TrainingRecord

FINAL_STEP = 100


def make_lora_folder(model_dir: Path, family: str, lora_dir: Path, checkpoints=(50,), seed: int = 0) -> Path:
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(model_dir / "unet")
    torch.manual_seed(seed)
    unet.add_adapter(
        LoraConfig(
            r=4, lora_alpha=4, init_lora_weights=False, target_modules=["to_q", "to_k", "to_v", "to_out.0"]
        )
    )
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    pipeline_class = StableDiffusionXLPipeline if family == "sdxl" else StableDiffusionPipeline
    pipeline_class.save_lora_weights(lora_dir, unet_lora_layers=layers, safe_serialization=True)
    for step in checkpoints:
        # An earlier checkpoint: the same directions, a fraction of the final strength.
        fraction = step / FINAL_STEP
        partial = {k: v * fraction if "lora_B" in k or "lora.up" in k else v for k, v in layers.items()}
        pipeline_class.save_lora_weights(
            lora_dir / "checkpoints" / f"checkpoint-{step}", unet_lora_layers=partial, safe_serialization=True
        )
    record = TrainingRecord(
        subject=Path(lora_dir).resolve().parent.name,
        identifier="sks",
        class_noun="woman",
        instance_prompt="a photo of sks woman",
        class_prompt="a photo of woman",
        base_model=str(model_dir),
        base_model_sha256="0" * 64,
        family=family,
        resolution=64,
        lora_sha256=sha256_file(lora_dir / LORA_FILE),
        dataset_sha256="0" * 64,
        steps=FINAL_STEP,
    )
    atomic_write_json(lora_dir / "training.json", record.model_dump(mode="json"))
    return lora_dir
