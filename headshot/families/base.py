"""What every model family says about itself, and the defaults the UNet families share.

A family is a class whose constants are its facts (pipeline class, denoiser, objective,
native size, size multiple, LoRA targets) and whose methods are the few operations that
differ between architectures. Stages hold a family object and call these; they never
compare family names. `_template.py` documents each hook's contract for a new family.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from headshot.errors import HeadshotError

if TYPE_CHECKING:
    import torch

Objective = Literal["epsilon", "v", "flow"]

# Options only flow-matching families read; a noise-prediction family refuses a changed value.
FLOW_ONLY_OPTIONS = (
    "timestep_sampling",
    "logit_mean",
    "logit_std",
    "training_guidance",
    "max_sequence_length",
)


@dataclass
class PromptEmbeddings:
    """A prompt as the denoiser sees it: a token sequence and (SDXL, FLUX) a pooled vector."""

    hidden: torch.Tensor  # (n, tokens, dim): what cross/joint attention attends to
    pooled: torch.Tensor | None  # (n, pooled_dim), or None (SD1.5)

    def repeat(self, count: int) -> PromptEmbeddings:
        pooled = None if self.pooled is None else self.pooled.repeat(count, 1)
        return PromptEmbeddings(self.hidden.repeat(count, 1, 1), pooled)

    def to(self, device, dtype=None) -> PromptEmbeddings:
        pooled = None if self.pooled is None else self.pooled.to(device, dtype)
        return PromptEmbeddings(self.hidden.to(device, dtype), pooled)

    @staticmethod
    def cat(parts: list[PromptEmbeddings]) -> PromptEmbeddings:
        import torch

        pooled = None if parts[0].pooled is None else torch.cat([p.pooled for p in parts])
        return PromptEmbeddings(torch.cat([p.hidden for p in parts]), pooled)


class Family:
    """Base of every family; the UNet defaults live in `sd.StableDiffusionFamily`."""

    name: ClassVar[str]
    description: ClassVar[str]
    pipeline_class_name: ClassVar[str]
    # The diffusers img2img class for the face-detail pass; None when diffusers has none.
    img2img_class_name: ClassVar[str | None]
    denoiser: ClassVar[Literal["unet", "transformer"]]
    objective: ClassVar[Objective]
    native_resolution: ClassVar[int]
    size_multiple: ClassVar[int]
    # LoRA target modules of the denoiser, by the `lora_layers` option's value.
    lora_targets: ClassVar[dict[str, list[str]]]
    text_encoder_lora_targets: ClassVar[list[str]] = ["q_proj", "k_proj", "v_proj", "out_proj"]
    # Component names of the text encoders and their tokenizers, in pipeline order.
    text_encoder_names: ClassVar[tuple[str, ...]]
    tokenizer_names: ClassVar[tuple[str, ...]]
    # Tensor-name prefixes only this family's single-file checkpoints have; a file that also
    # has one of `single_file_excludes` belongs to a later family sharing the prefix.
    single_file_markers: ClassVar[tuple[str, ...]]
    single_file_excludes: ClassVar[tuple[str, ...]] = ()
    # Samplers (templates' `sampler` names) this family renders with; the first is its default.
    samplers: ClassVar[tuple[str, ...]]
    # The family's own sampler settings for renders without a template: class images and
    # validation samples use them unless the finetune config sets its own.
    default_steps: ClassVar[int]
    default_guidance: ClassVar[float]
    # Sampler settings that replace a scene template's (which are tuned for SD) for this family.
    template_defaults: ClassVar[dict] = {}
    # Whether renders use a negative prompt (true classifier-free guidance).
    negative_prompts: ClassVar[bool] = True
    licence_note: ClassVar[str | None] = None
    # What kohya's trainer writes as `ss_base_model_version` (AUTOMATIC1111 sorts LoRAs by it).
    kohya_base_model_version: ClassVar[str | None] = None

    # --- loading ---------------------------------------------------------------------
    @property
    def pipeline_class(self):
        import diffusers

        return getattr(diffusers, self.pipeline_class_name)

    def recognise(self, model_index: dict | None, keys: set[str] | None) -> bool:
        """True when a folder's model_index.json (or a single file's tensor names) is this family's."""
        if model_index is not None:
            return model_index.get("_class_name") in (self.pipeline_class_name, self.img2img_class_name)
        if not keys:
            return False
        excludes = self.single_file_excludes
        excluded = bool(excludes) and any(key.startswith(excludes) for key in keys)
        return not excluded and any(key.startswith(self.single_file_markers) for key in keys)

    def load_kwargs(self) -> dict:
        """Extra `from_pretrained` arguments (SD1.5: no safety checker)."""
        return {}

    def denoiser_of(self, pipeline) -> torch.nn.Module:
        return getattr(pipeline, self.denoiser)

    def text_encoders(self, pipeline) -> list:
        return [e for e in (getattr(pipeline, n, None) for n in self.text_encoder_names) if e is not None]

    def tokenizers(self, pipeline) -> list:
        return [t for t in (getattr(pipeline, n, None) for n in self.tokenizer_names) if t is not None]

    def resolution(self, pipeline) -> int:
        """The loaded model's native image side (a tiny model's own, not the family's)."""
        raise NotImplementedError

    def resolution_from_folder(self, folder: Path) -> int | None:
        """The same, read from a diffusers folder's configs without loading weights."""
        raise NotImplementedError

    # --- training --------------------------------------------------------------------
    def lora_target_modules(self, denoiser, layers: str) -> list[str]:
        """The peft `target_modules` for `lora_layers` = layers on this denoiser."""
        return self.lora_targets[layers]

    def check_training_options(self, config, where: str) -> None:
        """Raise a HeadshotError naming the option when one does not apply to this family."""

    def prompt_length(self, config) -> int | None:
        """The text tokens a prompt is padded to, in training and in every render of the LoRA
        (the config's `max_sequence_length` where the pipeline takes one); None where the
        tokenizers fix it (SD's CLIP: 77)."""
        return None

    def tokenize(self, pipeline, prompt: str, config) -> list[torch.Tensor]:
        """One (1, length) id tensor per text encoder."""
        raise NotImplementedError

    def encode_prompt(self, text_encoders: list, token_ids: list[torch.Tensor], device) -> PromptEmbeddings:
        """Embed token ids exactly as the pipeline does at render time (differentiable)."""
        raise NotImplementedError

    # --- shapes at any size, from configs alone (the memory plan, the full-size tests) ------
    def training_latent_shape(self, vae_config: dict, resolution: int) -> tuple[int, int, int]:
        """(c, h, w) of `encode_latents`' output for a square image of `resolution` px, from the
        VAE's config: its latent channels at 1/2^(levels - 1) of the side."""
        side = resolution // 2 ** (len(vae_config["block_out_channels"]) - 1)
        return int(vae_config["latent_channels"]), side, side

    def prompt_embedding_shape(
        self, encoders: dict[str, dict], tokenizers: dict[str, dict], config=None
    ) -> tuple[int, int, int | None]:
        """(tokens, width, pooled width or None) of `encode_prompt`'s output for one prompt
        tokenized by `tokenize(..., config)`, from the text encoders' configs and the
        tokenizers' `tokenizer_config.json` (by component name) alone: no encoder is run."""
        raise NotImplementedError

    def time_ids(self, original_size: tuple[int, int], resolution: int) -> torch.Tensor:
        """Per-image extra conditioning (SDXL's six micro-conditioning numbers); empty by default."""
        import torch

        return torch.zeros(0)

    def encode_latents(self, vae, pixels: torch.Tensor) -> torch.Tensor:
        """Pixels (b, 3, H, W) in [-1, 1] -> the latents the denoiser trains on (b, c, h, w):
        the VAE distribution's mean, shifted and scaled as the pipeline scales them."""
        shift = getattr(vae.config, "shift_factor", None) or 0.0
        return (vae.encode(pixels).latent_dist.mean - shift) * vae.config.scaling_factor

    def vae_latents(self, vae, latents: torch.Tensor) -> torch.Tensor:
        """The inverse of `encode_latents`' scaling: training-layout latents -> the VAE decoder's input."""
        import torch

        config = vae.config
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        if mean is not None and std is not None:
            mean_t = torch.tensor(mean).view(1, -1, 1, 1).to(latents)
            std_t = torch.tensor(std).view(1, -1, 1, 1).to(latents)
            return latents * std_t / config.scaling_factor + mean_t
        return latents / config.scaling_factor + (getattr(config, "shift_factor", None) or 0.0)

    def training_objective(self, pipeline, config):
        """An object with `sample(latents, generator) -> (noisy, timesteps, target)` and
        `weights(timesteps) -> (b,)`; see families/objectives.py."""
        raise NotImplementedError

    def predict(self, denoiser, noisy, timesteps, prompts: PromptEmbeddings, time_ids, guidance: float):
        """The denoiser's output for latents in the VAE's layout (b, c, h, w), in that layout."""
        raise NotImplementedError

    # --- rendering and the study ------------------------------------------------------
    def render_kwargs(
        self, prompts: list[str], negatives: list | None, guidance: float, prompt_length: int | None = None
    ) -> dict:
        """The pipeline-call arguments that carry the prompt, guidance and (where the pipeline
        takes one) the prompt length the LoRA was trained at (`prompt_length`; None: the pipeline's own)."""
        raise NotImplementedError

    def x0_function(self):
        """None when the scheduler's own x0 (or the SD formulas) apply, else f(scheduler,
        output, timestep, sample) -> x0, called before the scheduler's step."""
        return None

    def latents_for_decoding(self, pipeline, latents, size: int):
        """Latents as the scheduler sees them -> the VAE's (b, c, h, w) layout."""
        return latents

    def attention_tokenizers(self, pipeline) -> list:
        """The tokenizers whose token positions index the attention maps' keys."""
        return self.tokenizers(pipeline)

    def attention_recorder(self, pipeline, positions: dict[str, list[int]], latent_hw: tuple[int, int]):
        raise NotImplementedError

    def image_to_image(self, pipeline):
        """For the face-detail pass: a function (image, strength, generator, **call) -> PIL image
        that re-renders `image` from `strength` of the way to noise with the loaded pipeline's own
        modules (no second copy of the weights); None when the family has no way to."""
        if self.img2img_class_name is None:
            return None
        from diffusers import AutoPipelineForImage2Image

        img2img = AutoPipelineForImage2Image.from_pipe(pipeline)
        img2img.set_progress_bar_config(disable=True)

        def render(image, strength: float, generator, **call):
            return img2img(
                image=image, strength=strength, generator=generator, output_type="pil", **call
            ).images[0]

        render.pipeline = img2img  # what renders the crop (its modules are the loaded pipeline's)
        return render

    # --- export ----------------------------------------------------------------------
    def lora_file_names(self, modules: list[str]) -> set[str]:
        """The module names the other-tools file (kohya / ComfyUI) gives the LoRA of these
        denoiser modules (peft's module names), as `export` writes them."""
        raise NotImplementedError

    def export(
        self, pipeline, out: Path, subject: str, train_text_encoder: bool, scale: float
    ) -> tuple[Path, Path]:
        """Write the diffusers LoRA (`out/pytorch_lora_weights.safetensors`) and the file other
        tools load; returns both paths."""
        raise NotImplementedError


def read_model_index(folder: Path) -> dict | None:
    """A diffusers folder's model_index.json (size-limited read), or None without one."""
    from headshot.bounded_io import read_json_object

    index = Path(folder) / "model_index.json"
    if not index.is_file():
        return None
    data = read_json_object(index, "a JSON object (a diffusers model_index.json)")
    if not isinstance(data.get("_class_name", ""), str):
        raise HeadshotError(f"{index}: field '_class_name': expected text (a diffusers pipeline class)")
    return data
