"""FLUX.2 [klein] (Black Forest Labs, Apache-2.0): a rectified-flow transformer on a Qwen3 encoder.

Facts that make it differ from FLUX.1, each handled here:
- one text encoder, a Qwen3 causal LM: every prompt goes through the tokenizer's chat template
  (a user turn, the assistant's turn opened, thinking off), padded to `max_sequence_length`,
  and the sequence the transformer attends to is the hidden states of layers 9, 18 and 27
  side by side (3 x 2560 = 7680 wide for the 4B model). There is no pooled vector;
- the VAE has 32 latent channels; its latents are patchified 2x2 (128 channels at 1/16 of
  the image side) and normalised by the VAE's own batch-norm statistics before the
  transformer sees them. That normalised 128-channel grid is what headshot trains on (its
  "latents"), so a token is one latent pixel and packing is a plain reshape;
- position ids have four axes (time, row, column, text position): image tokens are
  (0, row, column, 0), text tokens (0, 0, 0, index);
- the sampler's shift exponent mu is an empirical fit in the image's token count and the
  number of steps (`compute_empirical_mu`), not FLUX.1's linear rule; "resolution_shift"
  training uses it at the base model's 50 steps;
- klein has no guidance embedding. The base (undistilled) model renders with real
  classifier-free guidance against an empty prompt (the pipeline makes the negative itself,
  so template negative prompts are not used); the distilled model ignores guidance.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from headshot.families import register
from headshot.families.base import PromptEmbeddings
from headshot.families.flux1 import FlowTransformerFamily

if TYPE_CHECKING:
    import torch

# Double-stream blocks: separate q/k/v per stream. Single-stream blocks fuse q, k, v and the MLP
# input into `to_qkv_mlp_proj`, and the attention and MLP outputs into `attn.to_out` (listed per
# block in `lora_target_modules`: the double blocks' `attn.to_out` is a ModuleList peft cannot wrap).
KLEIN_ATTENTION = [
    "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out",
    "to_qkv_mlp_proj",
]  # fmt: skip
KLEIN_FEED_FORWARD = ["ff.linear_in", "ff.linear_out", "ff_context.linear_in", "ff_context.linear_out"]
KLEIN_ALL = KLEIN_ATTENTION + KLEIN_FEED_FORWARD
SINGLE_BLOCK_OUT = "single_transformer_blocks.{index}.attn.to_out"
# The Qwen3 layers whose hidden states are stacked (the pipeline's `text_encoder_out_layers`).
TEXT_LAYERS = (9, 18, 27)
# The base model's default number of sampling steps: the step count its training shift assumes.
BASE_STEPS = 50


def patchify(latents: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w) VAE latents -> (b, 4c, h/2, w/2): each 2x2 patch's values as channels."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return patches.reshape(b, c * 4, h // 2, w // 2)


def unpatchify(latents: torch.Tensor) -> torch.Tensor:
    """The inverse of `patchify`."""
    b, c, h, w = latents.shape
    grid = latents.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return grid.reshape(b, c // 4, h * 2, w * 2)


def batch_norm_stats(vae, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The VAE's per-channel latent mean and standard deviation, shaped (1, 128, 1, 1)."""
    import torch

    mean = vae.bn.running_mean.view(1, -1, 1, 1).to(like)
    std = torch.sqrt(vae.bn.running_var.view(1, -1, 1, 1) + vae.config.batch_norm_eps).to(like)
    return mean, std


def position_ids(rows: int, columns: int, text: int, batch: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(image ids (b, rows*columns, 4), text ids (b, text, 4)) in row-major token order."""
    import torch

    image = torch.cartesian_prod(torch.arange(1), torch.arange(rows), torch.arange(columns), torch.arange(1))
    words = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(text))
    return image.expand(batch, -1, -1).to(device), words.expand(batch, -1, -1).to(device)


def empirical_mu(tokens: int, steps: int = BASE_STEPS) -> float:
    """FLUX.2's sampler shift exponent for `tokens` image tokens (the pipeline's own function)."""
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    return compute_empirical_mu(image_seq_len=tokens, num_steps=steps)


class ChatPromptTokenizer:
    """The tokenizer as the study's word positions need it: a prompt is encoded through the
    chat template (the positions the transformer sees), a word with its leading space (as
    it stands inside a prompt)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.model_max_length = tokenizer.model_max_length

    def _text(self, prompt: str) -> str:
        turn = [{"role": "user", "content": prompt}]
        return self.tokenizer.apply_chat_template(
            turn, tokenize=False, add_generation_prompt=True, enable_thinking=False
        )

    def __call__(self, text: str, add_special_tokens: bool = True, **options):
        if add_special_tokens:
            return self.tokenizer(self._text(text), **options)
        return self.tokenizer(" " + text, add_special_tokens=False, **options)

    def tokenize(self, text: str) -> list[str]:
        return self.tokenizer.tokenize(text)


class Flux2Klein(FlowTransformerFamily):
    name = "flux2-klein"
    description = "FLUX.2 [klein]: flow-matching transformer, Qwen3 text encoder, 1024x1024, Apache-2.0"
    pipeline_class_name = "Flux2KleinPipeline"
    img2img_class_name = None  # diffusers has no klein img2img pipeline: image_to_image below
    denoiser = "transformer"
    objective = "flow"
    native_resolution = 1024
    size_multiple = 16  # VAE 8x times the 2x2 patch
    lora_targets = {"attention": KLEIN_ATTENTION, "all": KLEIN_ALL}
    text_encoder_names = ("text_encoder",)
    tokenizer_names = ("tokenizer",)
    # BFL's FLUX.2 layout: the shared modulations FLUX.1 does not have (bare or under ComfyUI's prefix).
    single_file_markers = (
        "double_stream_modulation_img.",
        "model.diffusion_model.double_stream_modulation_img.",
    )
    samplers = ("flow_euler",)
    # The base model's own defaults: 50 steps at guidance 4, real CFG against "" (the pipeline
    # takes no negative prompt text). The distilled model: 4 steps, guidance ignored.
    default_steps = BASE_STEPS
    default_guidance = 4.0
    template_defaults = {"sampler": "flow_euler", "steps": default_steps, "guidance": default_guidance}
    negative_prompts = False
    licence_note = "FLUX.2 [klein] 4B: Apache-2.0 (commercial use allowed)"
    text_encoder_size = "its Qwen3 encoder alone has 4B parameters"
    guidance_embedding = False  # klein is not guidance-distilled

    def lora_target_modules(self, denoiser, layers: str) -> list[str]:
        count = len(getattr(denoiser, "single_transformer_blocks", []))
        return self.lora_targets[layers] + [SINGLE_BLOCK_OUT.format(index=i) for i in range(count)]

    def tokenize(self, pipeline, prompt: str, config=None) -> list[torch.Tensor]:
        """[token ids, attention mask], each (1, max_sequence_length): the encoder needs both."""
        length = self.prompt_length(config) if config is not None else 512
        tokenizer = pipeline.tokenizer
        encoded = tokenizer(
            ChatPromptTokenizer(tokenizer)._text(prompt),
            padding="max_length", max_length=length, truncation=True, return_tensors="pt",
        )  # fmt: skip
        return [encoded.input_ids, encoded.attention_mask]

    def prompt_embedding_shape(self, encoders, tokenizers, config=None):
        # Derived, never traced: Qwen3's causal-mask code reads tensor values (`.item()`), which
        # the meta device does not have, so the encoder cannot run there. The tests hold this
        # rule to the real encoder's output on the tiny model.
        tokens = config.max_sequence_length if config is not None else 512
        return tokens, len(TEXT_LAYERS) * int(encoders["text_encoder"]["hidden_size"]), None

    def training_latent_shape(self, vae_config: dict, resolution: int) -> tuple[int, int, int]:
        # The 2x2-patchified grid: 4 x the VAE's channels at half its side.
        channels, side, _ = super().training_latent_shape(vae_config, resolution)
        return 4 * channels, side // 2, side // 2

    def encode_prompt(self, text_encoders, token_ids, device) -> PromptEmbeddings:
        import torch

        (encoder,) = text_encoders
        ids, mask = token_ids
        output = encoder(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            output_hidden_states=True,
            use_cache=False,
        )
        stacked = torch.stack([output.hidden_states[layer] for layer in TEXT_LAYERS], dim=2)
        return PromptEmbeddings(stacked.flatten(2), None)  # (n, tokens, 3 x hidden), layer-major per token

    def encode_latents(self, vae, pixels):
        latents = patchify(vae.encode(pixels).latent_dist.mode())
        mean, std = batch_norm_stats(vae, latents)
        return (latents - mean) / std

    def vae_latents(self, vae, latents):
        mean, std = batch_norm_stats(vae, latents)
        return unpatchify(latents * std + mean)

    def training_objective(self, pipeline, config):
        from headshot.families.objectives import FlowMatchingObjective

        return FlowMatchingObjective.from_scheduler(
            pipeline.scheduler.config, config, patch=1, shift_rule=empirical_mu
        )

    def predict(self, denoiser, noisy, timesteps, prompts: PromptEmbeddings, time_ids, guidance: float):
        import torch

        batch, channels, height, width = noisy.shape
        module = getattr(denoiser, "module", denoiser)  # DDP-wrapped under accelerate
        image_ids, text_ids = position_ids(height, width, prompts.hidden.shape[1], batch, noisy.device)
        embedded = None
        if module.config.guidance_embeds:  # FLUX.2 [dev]-style guidance-distilled transformers
            embedded = torch.full((batch,), float(guidance), device=noisy.device, dtype=torch.float32)
        output = denoiser(
            hidden_states=noisy.flatten(2).transpose(1, 2),  # (b, h*w, c): one token per latent pixel
            encoder_hidden_states=prompts.hidden,
            timestep=timesteps.to(noisy.dtype),
            img_ids=image_ids,
            txt_ids=text_ids,
            guidance=embedded,
            return_dict=False,
        )[0]
        return output.transpose(1, 2).reshape(batch, channels, height, width)

    def latents_for_decoding(self, pipeline, latents, size: int):
        if latents.ndim == 4:
            return latents
        side = int(size) // (int(pipeline.vae_scale_factor) * 2)
        return latents.transpose(1, 2).reshape(latents.shape[0], latents.shape[2], side, side)

    def attention_tokenizers(self, pipeline) -> list:
        return [ChatPromptTokenizer(pipeline.tokenizer)]

    def image_to_image(self, pipeline):
        """Flow-matching img2img with the text-to-image pipeline itself (diffusers has no klein
        img2img pipeline): the image's latents are noised to the first sigma of the schedule's
        last `strength` share, x = (1 - s) x0 + s noise, and denoised from there."""
        import numpy as np
        import torch
        from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

        def render(image, strength: float, generator, num_inference_steps: int = 50, **call):
            steps = int(num_inference_steps)
            tail = np.linspace(1.0, 1 / steps, steps)[steps - max(1, int(steps * strength)) :]
            vae = pipeline.vae
            pixels = pipeline.image_processor.preprocess(image, height=image.height, width=image.width)
            x0 = self.encode_latents(vae, pixels.to(vae.device, vae.dtype))
            # The pipeline shifts the given sigmas by the empirical mu: start from the shifted one.
            mu = compute_empirical_mu(image_seq_len=x0.shape[-2] * x0.shape[-1], num_steps=len(tail))
            pipeline.scheduler.set_timesteps(sigmas=list(tail), mu=mu)
            start = float(pipeline.scheduler.sigmas[0])
            noise = torch.randn(x0.shape, generator=generator, dtype=torch.float32).to(x0.device, x0.dtype)
            return pipeline(
                latents=(1 - start) * x0 + start * noise,
                sigmas=list(tail),
                num_inference_steps=len(tail),
                height=image.height,
                width=image.width,
                generator=generator,
                output_type="pil",
                **call,
            ).images[0]

        render.pipeline = pipeline
        return render

    def lora_file_names(self, modules: list[str]) -> set[str]:
        from headshot.families.export_flux2 import comfyui_flux2_name

        return {comfyui_flux2_name(module) for module in modules}

    def save_comfyui(self, pipeline, path: Path, scale: float) -> None:
        from headshot.families.export_flux2 import save_comfyui_flux2_lora

        save_comfyui_flux2_lora(pipeline, path, scale)

    def tiny(self, seed: int = 0):
        from headshot.families.flux2_klein_tiny import tiny_flux2_klein

        return tiny_flux2_klein(patchify, seed)


register(Flux2Klein())
