"""A template for a new family: copy it to `<name>.py`, fill in every hook, register it.

Not registered (the leading underscore keeps it out of `headshot.families.MODULES`). Each
hook says what it receives and must return; the trainer, renderer, exporter and study
call only these, so a family that fills them in works in every stage. Then add its tiny
model here (`tiny`, from the parts in tiny.py; a longer builder in `<name>_tiny.py`), presets
in configs/models/<name>.yaml and tiny-<name>.yaml, and one `FamilyCase` in
tests/family_cases.py: the contract suite runs every test on it (a flow-matching family also
a `FlowCase` in tests/flow_cases.py: the stage, training and learning suite).
"""

from __future__ import annotations

from pathlib import Path

from headshot.families.base import Family, PromptEmbeddings


class TemplateFamily(Family):
    name = "template"  # the value of `family:` in presets and records
    description = "one line for listings"
    pipeline_class_name = "SomePipeline"  # diffusers text-to-image class (model_index.json _class_name)
    img2img_class_name = "SomeImg2ImgPipeline"  # for the face-detail pass (None: diffusers has none)
    denoiser = "transformer"  # the pipeline attribute that is trained: "unet" or "transformer"
    objective = "flow"  # "epsilon", "v" or "flow": what the denoiser predicts
    native_resolution = 1024  # training side of the real model (prepare crops to it)
    size_multiple = 16  # every image side must divide by this (VAE factor x patch size)
    lora_targets = {"attention": ["to_q", "to_k", "to_v", "to_out.0"], "all": ["to_q"]}  # peft module names
    text_encoder_names = ("text_encoder",)
    tokenizer_names = ("tokenizer",)
    single_file_markers = ("only.this.family.has.",)  # tensor-name prefixes of one-file checkpoints
    single_file_excludes = ()  # prefixes of a later family's files that also carry the markers
    samplers = ("flow_euler",)  # template sampler names that work; the first is the default
    default_steps = 28  # the family's own sampler steps and guidance: class images and validation
    default_guidance = 3.5  # samples use them unless the finetune config sets its own
    template_defaults = {}  # sampler settings replacing the (SD-tuned) templates', e.g. {"guidance": 3.5}
    negative_prompts = True  # False when guidance is embedded (no true CFG)

    def resolution(self, pipeline) -> int:
        """The loaded model's own image side, from its configs (tiny models: 64)."""
        raise NotImplementedError

    def resolution_from_folder(self, folder: Path) -> int | None:
        """The same from a diffusers folder's JSON configs, without loading weights; None if unknown."""
        raise NotImplementedError

    def lora_target_modules(self, denoiser, layers: str) -> list:
        """peft target_modules for `lora_layers` (default: lora_targets[layers]); list modules
        by full name here when a suffix would also match a non-Linear module."""
        return super().lora_target_modules(denoiser, layers)

    def encode_latents(self, vae, pixels):
        """Pixels (b, 3, H, W) in [-1, 1] -> training latents (b, c, h, w), scaled (or patchified
        and normalised) exactly as the pipeline prepares latents for the denoiser."""
        return super().encode_latents(vae, pixels)

    def vae_latents(self, vae, latents):
        """The inverse of encode_latents' scaling: what `vae.decode` takes."""
        return super().vae_latents(vae, latents)

    def check_training_options(self, config, where: str) -> None:
        """Raise HeadshotError(f"{where}: option '<name>': ...") for an option this family cannot use."""

    def prompt_length(self, config) -> int | None:
        """The text tokens prompts are padded to in training and in every render of the LoRA
        (e.g. config.max_sequence_length); None where the tokenizers fix the length."""
        return super().prompt_length(config)

    def tokenize(self, pipeline, prompt: str, config) -> list:
        """One (1, length) LongTensor of token ids per text encoder, padded as the pipeline pads."""
        raise NotImplementedError

    def encode_prompt(self, text_encoders: list, token_ids: list, device) -> PromptEmbeddings:
        """hidden: (n, tokens, dim) the denoiser attends to; pooled: (n, d) or None. Must equal
        the pipeline's own encode_prompt (the contract suite checks), and stay differentiable."""
        raise NotImplementedError

    def training_latent_shape(self, vae_config: dict, resolution: int) -> tuple[int, int, int]:
        """(c, h, w) that `encode_latents` returns for a square image of `resolution` px, from the
        VAE's config dict alone (the memory plan and the full-size tests use it on meta models)."""
        raise NotImplementedError

    def prompt_embedding_shape(self, encoders: dict, tokenizers: dict, config=None) -> tuple:
        """(tokens, width, pooled width or None) of `encode_prompt`'s output, from the text
        encoders' config dicts and the tokenizers' tokenizer_config.json dicts (by component
        name); derived, not run, since some encoders cannot run on the meta device."""
        raise NotImplementedError

    def lora_file_names(self, modules: list[str]) -> set[str]:
        """The module names the other-tools file (kohya / ComfyUI) gives the LoRA of these
        denoiser modules (peft's module names); the full-size tests hold them to that tool's layout."""
        raise NotImplementedError

    def time_ids(self, original_size: tuple[int, int], resolution: int):
        """Per-image extra conditioning as a 1-D float tensor (SDXL: 6 numbers); empty if none."""
        return super().time_ids(original_size, resolution)

    def training_objective(self, pipeline, config):
        """An object with sample(latents, generator) -> (noisy, timesteps, target), all latents
        (b, c, h, w) but timesteps (b,) in the denoiser's own range (DDPM: integers 0..999;
        flow: sigma in [0, 1]), drawing only from `generator`; and weights(timesteps) -> (b,)."""
        raise NotImplementedError

    def predict(self, denoiser, noisy, timesteps, prompts: PromptEmbeddings, time_ids, guidance: float):
        """The denoiser's prediction for `noisy` (b, c, h, w), returned in that layout: pack and
        unpack here (patches, position ids), feed `guidance` to a guidance embedding if any."""
        raise NotImplementedError

    def render_kwargs(self, prompts, negatives, guidance: float, prompt_length: int | None = None) -> dict:
        """Pipeline-call arguments for prompts and guidance (drop negatives without true CFG),
        and the prompt length as the pipeline takes it (when `prompt_length` is not None)."""
        raise NotImplementedError

    def x0_function(self):
        """None, or f(scheduler, model_output, timestep, sample) -> predicted clean latents,
        called before the scheduler's step (flow: sample - sigma * velocity)."""
        return None

    def latents_for_decoding(self, pipeline, latents, size: int):
        """Latents as the scheduler sees them -> (b, c, h, w) for the VAE (unpack patches)."""
        return latents

    def image_to_image(self, pipeline):
        """For the face-detail pass: f(image, strength, generator, **call) -> PIL image, rendered
        with the loaded pipeline's own modules, with `.pipeline` the pipeline that renders. The
        default builds diffusers' img2img pipeline with from_pipe (img2img_class_name); a family
        without one implements it (FLUX.2 [klein]: noised latents on its text-to-image pipeline)."""
        return super().image_to_image(pipeline)

    def attention_tokenizers(self, pipeline) -> list:
        """Tokenizers whose token positions index the attention keys the study records."""
        return self.tokenizers(pipeline)

    def attention_recorder(self, pipeline, positions: dict[str, list[int]], latent_hw: tuple[int, int]):
        """A context manager recording, per step, each word's (latent_h, latent_w) attention map;
        it must offer .words, .maps() (n_words, h, w) and .per_step() (steps, n_words, h, w)."""
        raise NotImplementedError

    def export(self, pipeline, out: Path, subject: str, train_text_encoder: bool, scale: float):
        """Write out/pytorch_lora_weights.safetensors (loadable by the pipeline class's
        load_lora_weights unmodified) and the file other tools load; return both paths. `scale`
        (alpha / rank) must be folded into the weights."""
        raise NotImplementedError

    def tiny(self, seed: int = 0):
        """This family's pipeline with its real component layout, tiny sizes and random weights
        (seeded), tokenizers built offline: what tests and the demo run on."""
        raise NotImplementedError
