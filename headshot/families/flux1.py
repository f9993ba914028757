"""FLUX.1 (Black Forest Labs): a rectified-flow transformer, CLIP-L pooled + T5 sequence, 1024x1024.

Facts that make it differ from Stable Diffusion, each handled here:
- the denoiser is `FluxTransformer2DModel`; latents (16 channels) are packed into 2x2
  patches, a sequence of (h/2 * w/2) tokens of 64 numbers, with (0, row, column) position
  ids; text tokens get zero ids. Sizes must be multiples of 16 (VAE 8x times the 2x2 patch);
- the objective is flow matching: x_t = (1 - s) x0 + s noise, the model predicts the
  velocity noise - x0, and its timestep input is s in [0, 1];
- FLUX.1-dev is guidance-distilled: the guidance value is an input of the transformer
  (the guidance embedding), not classifier-free guidance, so negative prompts do nothing;
- CLIP-L gives only the pooled vector; T5's hidden states are the sequence that joint
  attention attends to.
FLUX.1-dev's weights are under a non-commercial licence (see configs/models/flux-dev.yaml).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from headshot.errors import HeadshotError
from headshot.families import register
from headshot.families.base import Family, PromptEmbeddings

if TYPE_CHECKING:
    import torch

FLUX_ATTENTION = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
FLUX_ALL = FLUX_ATTENTION + [
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "proj_mlp",
]


def pack(latents: torch.Tensor) -> torch.Tensor:
    """(b, c, h, w) -> (b, h/2 * w/2, c * 4): each 2x2 patch becomes one token."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of `pack` for a latent grid of height x width."""
    b, _, channels = tokens.shape
    grid = tokens.view(b, height // 2, width // 2, channels // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return grid.reshape(b, channels // 4, height, width)


def image_ids(height: int, width: int, device, dtype) -> torch.Tensor:
    """(h/2 * w/2, 3) position ids of the packed latent tokens: (0, row, column)."""
    import torch

    ids = torch.zeros(height // 2, width // 2, 3)
    ids[..., 1] = torch.arange(height // 2)[:, None]
    ids[..., 2] = torch.arange(width // 2)[None, :]
    return ids.reshape(-1, 3).to(device=device, dtype=dtype)


class FlowTransformerFamily(Family):
    """What the flow-matching transformer families share: the training options they refuse, the
    flow x0 for the study, joint attention maps, the export (diffusers LoRA + the family's
    ComfyUI file), and the native size read from the VAE's config."""

    # Why the text encoder is not trained: its size, named in the error that refuses the option.
    text_encoder_size: ClassVar[str]
    # Whether the transformer takes the guidance value as an input (FLUX.1-dev is
    # guidance-distilled); without that embedding `training_guidance` has nothing to set.
    guidance_embedding: ClassVar[bool] = True

    def check_training_options(self, config, where: str) -> None:
        refused = [
            ("snr_gamma", "min-SNR weighting", config.snr_gamma not in ("auto", None)),
            ("noise_offset", "offset noise", bool(config.noise_offset)),
        ]
        trains = "which trains with flow matching"
        if not self.guidance_embedding:
            refused.append(("training_guidance", "a guidance embedding", config.training_guidance != 1.0))
            trains += " and has no guidance embedding"
        for option, what, set_ in refused:
            if set_:
                raise HeadshotError(
                    f"{where}: option '{option}': {what} does not apply to {self.name}, {trains}; "
                    "remove it (or set it to its default)"
                )
        if config.train_text_encoder:
            raise HeadshotError(
                f"{where}: option 'train_text_encoder': not supported for {self.name} "
                f"({self.text_encoder_size}); train the transformer only"
            )

    def resolution(self, pipeline) -> int:
        return int(pipeline.vae.config.sample_size)

    def resolution_from_folder(self, folder: Path) -> int | None:
        from headshot.bounded_io import read_json

        try:
            return int(read_json(folder / "vae" / "config.json")["sample_size"])
        except (HeadshotError, OSError, ValueError, KeyError, TypeError):
            return None

    def prompt_length(self, config) -> int:
        return config.max_sequence_length

    def render_kwargs(self, prompts, negatives, guidance: float, prompt_length: int | None = None) -> dict:
        # No negative prompt: FLUX.1's guidance is embedded (FluxPipeline would run true CFG only
        # with true_cfg_scale > 1); klein's pipeline makes its own negative (""). Both pipelines
        # pad the prompt to `max_sequence_length` (512 unless told).
        length = {} if prompt_length is None else {"max_sequence_length": prompt_length}
        return {"prompt": prompts, "guidance_scale": guidance, **length}

    def x0_function(self):
        return flow_x0

    def attention_recorder(self, pipeline, positions, latent_hw):
        from headshot.families.joint_attention import JointAttentionRecorder

        return JointAttentionRecorder(pipeline, positions, latent_hw)

    def save_comfyui(self, pipeline, path: Path, scale: float) -> None:
        """Write the LoRA in the names ComfyUI maps onto this family's model."""
        raise NotImplementedError

    def export(self, pipeline, out: Path, subject: str, train_text_encoder: bool, scale: float):
        from headshot.families.export_flux import save_flux_diffusers_lora

        lora_file = save_flux_diffusers_lora(pipeline, out, scale)
        comfy_file = out / "comfyui" / f"{subject}.safetensors"
        self.save_comfyui(pipeline, comfy_file, scale)
        return lora_file, comfy_file


class Flux1(FlowTransformerFamily):
    name = "flux"
    description = "FLUX.1: flow-matching transformer, CLIP-L + T5 text encoders, 1024x1024"
    pipeline_class_name = "FluxPipeline"
    img2img_class_name = "FluxImg2ImgPipeline"
    denoiser = "transformer"
    objective = "flow"
    native_resolution = 1024
    size_multiple = 16
    lora_targets = {"attention": FLUX_ATTENTION, "all": FLUX_ALL}
    text_encoder_names = ("text_encoder", "text_encoder_2")
    tokenizer_names = ("tokenizer", "tokenizer_2")
    # BFL's own layout (flux1-dev.safetensors), bare or under ComfyUI's model prefix.
    single_file_markers = ("double_blocks.", "model.diffusion_model.double_blocks.")
    # FLUX.2 files have double blocks too; their shared modulations tell them apart.
    single_file_excludes = (
        "double_stream_modulation_img.",
        "model.diffusion_model.double_stream_modulation_img.",
    )
    samplers = ("flow_euler",)
    # FLUX.1-dev's own defaults: 28 steps at embedded guidance 3.5.
    default_steps = 28
    default_guidance = 3.5
    template_defaults = {"sampler": "flow_euler", "steps": default_steps, "guidance": default_guidance}
    negative_prompts = False
    kohya_base_model_version = "flux1"
    text_encoder_size = "its T5 encoder alone has 4.7B parameters"
    licence_note = "FLUX.1-dev: FLUX.1 [dev] Non-Commercial License (outputs may be used commercially)"

    def tokenize(self, pipeline, prompt: str, config=None) -> list[torch.Tensor]:
        clip, t5 = self.tokenizers(pipeline)
        length = self.prompt_length(config) if config is not None else 512

        def ids(tokenizer, max_length):
            return tokenizer(
                prompt, padding="max_length", max_length=max_length, truncation=True, return_tensors="pt"
            ).input_ids

        return [ids(clip, clip.model_max_length), ids(t5, length)]

    def prompt_embedding_shape(self, encoders, tokenizers, config=None):
        # T5's hidden states are the sequence; CLIP-L's pooler output (its width, unprojected).
        tokens = config.max_sequence_length if config is not None else 512
        return (
            tokens,
            int(encoders["text_encoder_2"]["d_model"]),
            int(encoders["text_encoder"]["hidden_size"]),
        )

    def encode_prompt(self, text_encoders, token_ids, device) -> PromptEmbeddings:
        clip, t5 = text_encoders
        pooled = clip(token_ids[0].to(device), output_hidden_states=False).pooler_output
        hidden = t5(token_ids[1].to(device), output_hidden_states=False)[0]
        return PromptEmbeddings(hidden, pooled)

    def training_objective(self, pipeline, config):
        from headshot.families.objectives import FlowMatchingObjective

        return FlowMatchingObjective.from_scheduler(pipeline.scheduler.config, config)

    def predict(self, denoiser, noisy, timesteps, prompts: PromptEmbeddings, time_ids, guidance: float):
        import torch

        batch, _, height, width = noisy.shape
        module = getattr(denoiser, "module", denoiser)  # DDP-wrapped under accelerate
        dtype = noisy.dtype
        embedded = None
        if module.config.guidance_embeds:
            embedded = torch.full((batch,), float(guidance), device=noisy.device, dtype=torch.float32)
        output = denoiser(
            hidden_states=pack(noisy),
            timestep=timesteps.to(dtype),
            guidance=embedded,
            pooled_projections=prompts.pooled,
            encoder_hidden_states=prompts.hidden,
            txt_ids=torch.zeros(prompts.hidden.shape[1], 3, device=noisy.device, dtype=dtype),
            img_ids=image_ids(height, width, noisy.device, dtype),
            return_dict=False,
        )[0]
        return unpack(output, height, width)

    def latents_for_decoding(self, pipeline, latents, size: int):
        if latents.ndim == 4:
            return latents
        grid = 2 * (int(size) // (int(pipeline.vae_scale_factor) * 2))
        return unpack(latents, grid, grid)

    def attention_tokenizers(self, pipeline) -> list:
        return [pipeline.tokenizer_2]  # joint attention's text keys are T5's tokens

    def lora_file_names(self, modules: list[str]) -> set[str]:
        from headshot.families.export_flux import comfyui_name

        return {comfyui_name(module) for module in modules}

    def save_comfyui(self, pipeline, path: Path, scale: float) -> None:
        from headshot.families.export_flux import save_comfyui_lora

        save_comfyui_lora(pipeline, path, scale)

    def tiny(self, seed: int = 0):
        from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
        from transformers import T5Config, T5EncoderModel

        from headshot.families import tiny

        parts = tiny.common_parts(
            seed, latent_channels=16, shift_factor=0.0, use_quant_conv=False, use_post_quant_conv=False
        )
        clip = tiny.clip_text_encoder(parts.vocab_size, with_projection=False)
        t5_tokenizer = tiny.build_tiny_t5_tokenizer()
        t5 = T5EncoderModel(
            T5Config(
                vocab_size=len(t5_tokenizer),
                d_model=32,
                d_ff=64,
                d_kv=8,
                num_layers=2,
                num_heads=4,
                relative_attention_num_buckets=8,
                feed_forward_proj="gated-gelu",
                pad_token_id=0,
                eos_token_id=1,
                decoder_start_token_id=0,
            )
        )
        transformer = FluxTransformer2DModel(
            patch_size=1,
            in_channels=64,
            num_layers=2,
            num_single_layers=2,
            attention_head_dim=16,
            num_attention_heads=4,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            guidance_embeds=True,
            axes_dims_rope=(4, 6, 6),
        )
        return FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler(**tiny.FLOW_SCHEDULE),
            vae=parts.vae,
            text_encoder=clip,
            tokenizer=parts.tokenizer,
            text_encoder_2=t5,
            tokenizer_2=t5_tokenizer,
            transformer=transformer,
        )


def flow_x0(scheduler, model_output, timestep, sample):
    """x0 = x_t - sigma * v for the flow-matching step about to be taken."""
    import torch

    index = scheduler.step_index
    if index is None:
        index = scheduler.begin_index
    if index is None:
        index = scheduler.index_for_timestep(timestep)
    sigma = scheduler.sigmas[index].to(sample.device, torch.float32)
    return sample.float() - sigma * model_output.float()


register(Flux1())
