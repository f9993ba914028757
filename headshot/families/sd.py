"""What Stable Diffusion 1.x and XL share: a UNet denoiser trained on DDPM noise.

The objective (epsilon or v) comes from the model's scheduler config, as the model
was trained; min-SNR weighting and offset noise apply here. Renders use true
classifier-free guidance, so negative prompts work.
"""

from __future__ import annotations

from pathlib import Path

from headshot.errors import HeadshotError
from headshot.families.base import FLOW_ONLY_OPTIONS, Family, PromptEmbeddings

UNET_ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
# "all": also the transformer projections and feed-forward, and the ResNet blocks' convolutions
# and time-embedding projections. More capacity, bigger files; diffusers and kohya load both.
UNET_ALL = UNET_ATTENTION + [
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "time_emb_proj",
]
SD_SAMPLERS = ("dpmpp_2m", "euler", "euler_a", "ddim", "pndm", "unipc")
DEFAULT_SNR_GAMMA = 5.0


class StableDiffusionFamily(Family):
    denoiser = "unet"
    objective = "epsilon"  # v for v-prediction checkpoints: read from the scheduler config
    size_multiple = 8
    lora_targets = {"attention": UNET_ATTENTION, "all": UNET_ALL}
    samplers = SD_SAMPLERS
    default_steps = 25
    default_guidance = 5.0

    def resolution(self, pipeline) -> int:
        """The UNet's latent size times the VAE's downscale factor."""
        return int(pipeline.unet.config.sample_size) * int(pipeline.vae_scale_factor)

    def resolution_from_folder(self, folder: Path) -> int | None:
        from headshot.bounded_io import read_json

        try:
            unet = read_json(folder / "unet" / "config.json")
            vae = read_json(folder / "vae" / "config.json")
            return int(unet["sample_size"]) * 2 ** (len(vae["block_out_channels"]) - 1)
        except (HeadshotError, OSError, ValueError, KeyError, TypeError):
            return None

    def check_training_options(self, config, where: str) -> None:
        for option in FLOW_ONLY_OPTIONS:
            if getattr(config, option) != type(config).model_fields[option].default:
                raise HeadshotError(
                    f"{where}: option '{option}' applies to flow-matching families only; "
                    f"{self.name} trains with noise prediction (remove it)"
                )

    def tokenize(self, pipeline, prompt: str, config=None) -> list:
        return [
            tokenizer(
                prompt,
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            for tokenizer in self.tokenizers(pipeline)
        ]

    def prompt_embedding_shape(self, encoders, tokenizers, config=None):
        # CLIP pads every prompt to the tokenizer's length (77: the encoder's positions).
        first = self.text_encoder_names[0]
        tokens = tokenizers.get(self.tokenizer_names[0], {}).get("model_max_length")
        tokens = min(int(tokens or 10**9), int(encoders[first]["max_position_embeddings"]))
        width = sum(int(encoders[name]["hidden_size"]) for name in self.text_encoder_names)
        return tokens, width, self.pooled_width(encoders)

    def pooled_width(self, encoders: dict[str, dict]) -> int | None:
        return None

    def training_objective(self, pipeline, config):
        from diffusers import DDPMScheduler

        from headshot.families.objectives import NoiseObjective

        gamma = config.snr_gamma
        if gamma == "auto":
            gamma = DEFAULT_SNR_GAMMA
        return NoiseObjective(
            DDPMScheduler.from_config(pipeline.scheduler.config), gamma, config.noise_offset
        )

    def predict(self, denoiser, noisy, timesteps, prompts: PromptEmbeddings, time_ids, guidance: float):
        conditioning = {}
        if prompts.pooled is not None:
            conditioning["added_cond_kwargs"] = {"text_embeds": prompts.pooled, "time_ids": time_ids}
        return denoiser(noisy, timesteps, encoder_hidden_states=prompts.hidden, **conditioning).sample

    def render_kwargs(self, prompts, negatives, guidance: float, prompt_length: int | None = None) -> dict:
        return {"prompt": prompts, "negative_prompt": negatives, "guidance_scale": guidance}

    def attention_recorder(self, pipeline, positions, latent_hw):
        from headshot.families.attention import CrossAttentionRecorder

        return CrossAttentionRecorder(pipeline, positions, latent_hw)

    def lora_file_names(self, modules: list[str]) -> set[str]:
        from headshot.families.export import kohya_module_names

        return kohya_module_names(self.denoiser, modules)

    def export(self, pipeline, out: Path, subject: str, train_text_encoder: bool, scale: float):
        from headshot.families.export import save_diffusers_lora, save_kohya_lora

        lora_file = save_diffusers_lora(pipeline, out, train_text_encoder, scale, denoiser=self.denoiser)
        kohya_file = out / "kohya" / f"{subject}.safetensors"
        save_kohya_lora(pipeline, kohya_file, train_text_encoder, scale, denoiser=self.denoiser)
        return lora_file, kohya_file
