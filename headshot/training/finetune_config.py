"""Every option of `headshot finetune`, in one typed place (configs/finetune.yaml mirrors it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from headshot.config import DEFAULT_BASE_MODEL, Seed, StrictModel, Text, Word
from headshot.config import cache_root as default_cache_root
from headshot.quantize import QUANTIZE_DESCRIPTION, QuantizeBase

# Options that change the trained weights: a resumed run must use the same values.
RESULT_FIELDS = (
    "base_model",
    "identifier",
    "class_noun",
    "instance_prompt",
    "class_prompt",
    "steps",
    "batch_size",
    "gradient_accumulation",
    "lr",
    "text_encoder_lr",
    "lr_scheduler",
    "lr_warmup_steps",
    "rank",
    "alpha",
    "lora_dropout",
    "lora_layers",
    "train_text_encoder",
    "prior_preservation",
    "prior_loss_weight",
    "num_class_images",
    "mixed_precision",
    "quantize_base",
    "use_8bit_adam",
    "weight_decay",
    "max_grad_norm",
    "snr_gamma",
    "noise_offset",
    "face_loss_weight",
    "timestep_sampling",
    "logit_mean",
    "logit_std",
    "training_guidance",
    "max_sequence_length",
    "seed",
)


class FinetuneConfig(StrictModel):
    """DreamBooth + LoRA options. Defaults are for the default base model on one GPU; sampler
    settings left unset are the family's own."""

    base_model: str = DEFAULT_BASE_MODEL  # preset, hub id, diffusers folder or .safetensors file
    # Words: the rare identifier token means *this* person; the class noun what they are.
    identifier: Word = "sks"
    class_noun: Word = "person"
    instance_prompt: Text | None = None  # default: "a photo of {identifier} {class_noun}"
    class_prompt: Text | None = None  # default: "a photo of {class_noun}"

    # Optimisation. One step = one optimizer update (batch_size x accumulation x processes images).
    steps: int = Field(800, gt=0, le=1_000_000)
    batch_size: int = Field(1, gt=0, le=1024)
    gradient_accumulation: int = Field(1, gt=0, le=1024)
    lr: float = Field(1e-4, gt=0)
    text_encoder_lr: float | None = Field(None, gt=0)  # default: lr
    lr_scheduler: Literal["constant", "constant_with_warmup", "linear", "cosine"] = "constant"
    lr_warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(1e-2, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    use_8bit_adam: bool = Field(
        False,
        description="bitsandbytes AdamW8bit: AdamW's two moments in 8 bits, 6 bytes less per LoRA "
        "weight (CUDA only; the LoRA is small, so this matters little next to the base)",
    )

    # LoRA on the UNet attention projections, optionally on the text encoder(s) too.
    rank: int = Field(16, gt=0, le=1024)
    alpha: float | None = Field(None, gt=0)  # default: rank (scale 1)
    lora_dropout: float = Field(0.0, ge=0, lt=1)
    lora_layers: Literal["attention", "all"] = Field(
        "attention",
        validation_alias=AliasChoices("lora_layers", "unet_lora_layers"),
        description="denoiser layers with LoRA: attention (the DreamBooth-LoRA standard), or all "
        "(+ feed-forward; UNets also ResNet convs); the family names the modules",
    )
    train_text_encoder: bool = False

    # Prior preservation: class images from the base model keep the class noun intact.
    prior_preservation: bool = True
    prior_loss_weight: float = Field(1.0, ge=0)
    num_class_images: int = Field(100, gt=0, le=100_000)
    class_inference_steps: int | None = Field(
        None, gt=0, le=1000, description="sampler steps of the class images (default: the family's own)"
    )
    class_guidance_scale: float | None = Field(
        None, ge=0, description="guidance of the class images (default: the family's own)"
    )
    class_batch_size: int = Field(4, gt=0, le=1024)

    # Loss shaping.
    snr_gamma: float | Literal["auto"] | None = Field(
        "auto",
        description="min-SNR weighting gamma (noise-prediction families only): a number > 0; "
        "auto: 5 for SD, off for flow matching; null: off",
    )
    noise_offset: float = Field(0.0, ge=0)  # noise-prediction families only
    face_loss_weight: float = Field(2.0, gt=0)  # loss weight inside the face mask (1 = plain loss)

    # Flow matching (FLUX): how timesteps are drawn, the guidance the transformer is told.
    timestep_sampling: Literal["resolution_shift", "logit_normal", "uniform"] = Field(
        "resolution_shift",
        description="flow-matching timesteps: logit_normal, resolution_shift (logit-normal, then "
        "the model's resolution-dependent shift, as its sampler shifts), or uniform",
    )
    logit_mean: float = Field(0.0, description="mean of the logit-normal timestep draw")
    logit_std: float = Field(1.0, gt=0, description="spread of the logit-normal timestep draw")
    training_guidance: float = Field(
        1.0, ge=0, description="value fed to a guidance-distilled model's guidance embedding while training"
    )
    max_sequence_length: int = Field(
        512, ge=16, le=512, description="T5 prompt tokens (FLUX; fewer is faster, 512 is the model's own)"
    )

    # Speed and memory.
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"  # auto: bf16 on CUDA, no on CPU
    gradient_checkpointing: bool = Field(
        False,
        description="recompute the denoiser's activations in the backward pass: far less activation "
        "memory, about 20-35% slower steps",
    )
    quantize_base: QuantizeBase = Field("none", description=QUANTIZE_DESCRIPTION)
    memory_check: bool = Field(
        True,
        description="estimate the peak accelerator memory before loading and stop when it does not fit "
        "the free memory (false: only print the estimate)",
    )
    memory_limit_gib: float | None = Field(
        None, gt=0, description="memory the run may use, in GiB (default: all the device's free memory)"
    )

    seed: Seed = 0
    checkpoint_steps: int = Field(100, ge=0)  # 0: only the final state
    checkpoints_keep: int = Field(2, gt=0)
    stop_after_steps: int | None = Field(None, gt=0)  # this run: stop (checkpointed) after N steps

    validation_steps: int = Field(200, ge=0)  # 0: only after the last step
    validation_prompt: Text | None = None  # default: the instance prompt
    validation_seeds: list[Seed] = Field(default_factory=lambda: [0, 1], max_length=64)
    validation_inference_steps: int | None = Field(
        None, gt=0, le=1000, description="sampler steps of the validation samples (default: the family's own)"
    )
    validation_guidance_scale: float | None = Field(
        None, ge=0, description="guidance of the validation samples (default: the family's own)"
    )
    # Which step's LoRA is exported: the validated step whose samples score best by
    # leave-one-out likeness (the last step when no sample shows a face), or the last.
    select: Literal["best_likeness", "last"] = "best_likeness"

    cache_dir: Path | None = None  # class images; default $HEADSHOT_CACHE or ~/.cache/headshot
    tensorboard: bool = True

    @model_validator(mode="after")
    def _fill_prompts(self) -> FinetuneConfig:
        if not self.identifier.strip() or not self.class_noun.strip():
            raise ValueError("identifier and class_noun must not be empty")
        if self.instance_prompt is None:
            self.instance_prompt = f"a photo of {self.identifier} {self.class_noun}"
        if self.class_prompt is None:
            self.class_prompt = f"a photo of {self.class_noun}"
        if self.identifier not in self.instance_prompt.split():
            raise ValueError(f"instance_prompt must contain the identifier '{self.identifier}'")
        if self.validation_prompt is None:
            self.validation_prompt = self.instance_prompt
        return self

    @field_validator("snr_gamma", mode="before")
    @classmethod
    def _snr_gamma_words(cls, value: object) -> object:
        """The command line gives text: "null" (or "none") means off, as YAML's null does."""
        if isinstance(value, str) and value.strip().lower() in ("null", "none"):
            return None
        return value

    @model_validator(mode="after")
    def _snr_gamma_positive(self) -> FinetuneConfig:
        if isinstance(self.snr_gamma, float) and self.snr_gamma <= 0:
            raise ValueError("snr_gamma must be greater than 0 (or auto, or null for off)")
        return self

    @property
    def lora_alpha(self) -> float:
        return self.alpha if self.alpha is not None else float(self.rank)

    @property
    def cache_root(self) -> Path:
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        return default_cache_root()

    def class_sampling(self, family) -> tuple[int, float]:
        """(steps, guidance) of the class images: the config's, else the family's own."""
        return _given(self.class_inference_steps, family.default_steps), _given(
            self.class_guidance_scale, family.default_guidance
        )

    def validation_sampling(self, family) -> tuple[int, float]:
        """(steps, guidance) of the validation samples: the config's, else the family's own."""
        return _given(self.validation_inference_steps, family.default_steps), _given(
            self.validation_guidance_scale, family.default_guidance
        )

    def result_settings(self) -> dict:
        """The options a resumed run must share with the run it continues."""
        data = self.model_dump(mode="json")
        return {name: data[name] for name in RESULT_FIELDS}


def _given(value, default):
    return default if value is None else value
