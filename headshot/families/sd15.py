"""Stable Diffusion 1.x: one CLIP text encoder (its last hidden state), 512x512."""

from __future__ import annotations

from headshot.families import register
from headshot.families.base import PromptEmbeddings
from headshot.families.sd import StableDiffusionFamily


class SD15(StableDiffusionFamily):
    name = "sd15"
    description = "Stable Diffusion 1.x: one CLIP text encoder, 512x512"
    pipeline_class_name = "StableDiffusionPipeline"
    img2img_class_name = "StableDiffusionImg2ImgPipeline"
    native_resolution = 512
    text_encoder_names = ("text_encoder",)
    tokenizer_names = ("tokenizer",)
    single_file_markers = ("cond_stage_model.",)
    kohya_base_model_version = "sd_v1"

    def load_kwargs(self) -> dict:
        # Headshots are portraits of consenting adults; the SD1.5 NSFW checker only
        # blacks out false positives (and SDXL has none at all).
        return {"safety_checker": None, "requires_safety_checker": False}

    def encode_prompt(self, text_encoders, token_ids, device) -> PromptEmbeddings:
        return PromptEmbeddings(text_encoders[0](token_ids[0].to(device))[0], None)

    def tiny(self, seed: int = 0):
        from diffusers import PNDMScheduler, StableDiffusionPipeline

        from headshot.families import tiny

        parts = tiny.common_parts(seed)
        return StableDiffusionPipeline(
            vae=parts.vae,
            text_encoder=tiny.clip_text_encoder(parts.vocab_size, with_projection=False),
            tokenizer=parts.tokenizer,
            unet=tiny.unet(cross_attention_dim=32),
            scheduler=PNDMScheduler(skip_prk_steps=True, steps_offset=1, **tiny.SD_SCHEDULE),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )


register(SD15())
