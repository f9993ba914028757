"""Stable Diffusion XL: two CLIP text encoders side by side, added time ids, 1024x1024.

The encoding mirrors StableDiffusionXLPipeline: both encoders' penultimate hidden states
concatenated on the channel axis, and the second encoder's projected pooled output.
"""

from __future__ import annotations

from headshot.families import register
from headshot.families.base import PromptEmbeddings
from headshot.families.sd import StableDiffusionFamily


class SDXL(StableDiffusionFamily):
    name = "sdxl"
    description = "Stable Diffusion XL: two text encoders, added time ids, 1024x1024"
    pipeline_class_name = "StableDiffusionXLPipeline"
    img2img_class_name = "StableDiffusionXLImg2ImgPipeline"
    native_resolution = 1024
    text_encoder_names = ("text_encoder", "text_encoder_2")
    tokenizer_names = ("tokenizer", "tokenizer_2")
    single_file_markers = ("conditioner.embedders.1.",)
    kohya_base_model_version = "sdxl_base_v1-0"

    def pooled_width(self, encoders: dict[str, dict]) -> int | None:
        return int(encoders["text_encoder_2"]["projection_dim"])  # the projected text_embeds

    def encode_prompt(self, text_encoders, token_ids, device) -> PromptEmbeddings:
        import torch

        hidden, pooled = [], None
        for encoder, ids in zip(text_encoders, token_ids):
            output = encoder(ids.to(device), output_hidden_states=True)
            pooled = output[0]  # the last encoder's projected pooled output (text_embeds)
            hidden.append(output.hidden_states[-2])
        return PromptEmbeddings(torch.cat(hidden, dim=-1), pooled)

    def time_ids(self, original_size: tuple[int, int], resolution: int):
        """Micro-conditioning: (original h, w, crop top, left, target h, w)."""
        import torch

        return torch.tensor([*original_size, 0, 0, resolution, resolution], dtype=torch.float32)

    def tiny(self, seed: int = 0):
        from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

        from headshot.families import tiny

        parts = tiny.common_parts(seed)
        return StableDiffusionXLPipeline(
            vae=parts.vae,
            text_encoder=tiny.clip_text_encoder(parts.vocab_size, with_projection=False),
            text_encoder_2=tiny.clip_text_encoder(parts.vocab_size, with_projection=True),
            tokenizer=parts.tokenizer,
            tokenizer_2=tiny.build_tiny_tokenizer(),
            unet=tiny.unet(cross_attention_dim=64, pooled_dim=32),
            scheduler=EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1, **tiny.SD_SCHEDULE),
        )


register(SDXL())
