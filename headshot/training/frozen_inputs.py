"""What the frozen parts of a model compute for training, cached on disk: prompt embeddings
and VAE latents (and the class images prior preservation renders).

Why: with frozen text encoders, a run needs the encoders once per prompt and the VAE once per
image; everything after is the denoiser. Cached on disk, a second run on the same model and
photos (another rank or learning rate, a resume, the next subject's class images) loads
neither: FLUX.1's T5 alone is 9 GB in bf16. They are loaded only when a validation sample is
rendered (the first time one is due), or not at all when none is.

A cache entry is keyed by everything its tensor depends on: the model's fingerprint (weights,
configs and tokenizer files), the family, the dtype the frozen parts run in, and the exact
input: the prompt and its token length, or the images' pixel bytes. An unreadable entry is
recomputed and rewritten, never an error.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from headshot.families.base import PromptEmbeddings
from headshot.records import atomic_write_bytes
from headshot.training.data import ImageSet, LatentSet, encode_latents, latent_set, load_class_images
from headshot.training.prior import (
    class_image_folder,
    class_image_path,
    generate_class_images,
    missing_class_images,
)


class EncodedCache:
    """Prompt embeddings and latents of one model in one dtype, under `root/encoded/`."""

    def __init__(self, root: Path, model_sha256: str, family_name: str, dtype: torch.dtype):
        self.folder = Path(root) / "encoded"
        self.enabled = model_sha256 not in ("", "unknown")  # no fingerprint: nothing to key on
        self.scope = {"model_sha256": model_sha256, "family": family_name, "dtype": str(dtype)}

    def _path(self, kind: str, detail: dict, payload: bytes = b"") -> Path:
        digest = hashlib.sha256(json.dumps({**self.scope, "kind": kind, **detail}, sort_keys=True).encode())
        digest.update(payload)
        return self.folder / f"{kind}-{digest.hexdigest()[:32]}.safetensors"

    def _prompt_path(self, prompt: str, config) -> Path:
        return self._path("prompt", {"prompt": prompt, "max_sequence_length": config.max_sequence_length})

    def _latents_path(self, images: ImageSet) -> Path:
        pixels = images.pixels.contiguous()
        return self._path("latents", {"shape": list(pixels.shape)}, pixels.numpy().tobytes())

    def _read(self, path: Path) -> dict[str, torch.Tensor] | None:
        if not self.enabled or not path.is_file():
            return None
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception:  # damaged or cut short: recomputed and rewritten
            return None

    def _write(self, path: Path, tensors: dict[str, torch.Tensor]) -> None:
        if not self.enabled:
            return
        from safetensors.torch import save

        try:
            atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))
        except OSError:
            pass  # a read-only cache only costs the encoding next time

    def prompt(self, prompt: str, config) -> PromptEmbeddings | None:
        found = self._read(self._prompt_path(prompt, config))
        return None if found is None else PromptEmbeddings(found["hidden"], found.get("pooled"))

    def store_prompt(self, prompt: str, config, embeddings: PromptEmbeddings) -> None:
        tensors = {"hidden": embeddings.hidden}
        if embeddings.pooled is not None:
            tensors["pooled"] = embeddings.pooled
        self._write(self._prompt_path(prompt, config), tensors)

    def latents(self, images: ImageSet) -> torch.Tensor | None:
        found = self._read(self._latents_path(images))
        return None if found is None else found["latents"]

    def store_latents(self, images: ImageSet, latents: torch.Tensor) -> None:
        self._write(self._latents_path(images), {"latents": latents})


@dataclass
class FrozenInputs:
    """What the training loop needs from the frozen parts, and how it was obtained."""

    instances: LatentSet
    classes: LatentSet | None
    instance_prompt: PromptEmbeddings | list[torch.Tensor]  # token ids when the encoders train
    class_prompt: PromptEmbeddings | list[torch.Tensor] | None  # None without prior preservation


@dataclass
class InputPlan:
    """Before loading: the images, the class-image folder, and the cache entries found (read
    once here; set-up uses them as they are)."""

    cache: EncodedCache
    instance_images: ImageSet
    class_folder: Path | None
    class_images: ImageSet | None  # None when prior preservation is off or images are missing
    instance_latents: torch.Tensor | None  # None: not cached
    class_latents: torch.Tensor | None
    prompts: dict[str, PromptEmbeddings]  # the cached embeddings, by prompt

    def all_cached(self, config) -> bool:
        if self.instance_latents is None or (config.prior_preservation and self.class_latents is None):
            return False
        return config.train_text_encoder or all(text in self.prompts for text in _prompts(config))

    def needs_frozen_parts(self, config) -> bool:
        """Whether set-up loads the text encoders and the VAE (training them always does)."""
        return config.train_text_encoder or not self.all_cached(config)

    def frozen_parts_loaded(self, config) -> str:
        """When the text encoders and the VAE are in memory: "training" (from set-up, or from a
        validation sample during training, on), "after" (only for the final samples), "never"."""
        if self.needs_frozen_parts(config):
            return "training"
        if not config.validation_seeds:
            return "never"
        if config.validation_steps and config.validation_steps < config.steps:
            return "training"
        return "after"


def plan_inputs(config, images: ImageSet, model_sha256: str, family, dtype, resolution: int) -> InputPlan:
    """Look up every cache entry a run needs, without loading any model."""
    cache = EncodedCache(config.cache_root, model_sha256, family.name, dtype)
    class_folder, class_images = None, None
    if config.prior_preservation:
        quantized = config.quantize_base != "none"  # class images of a quantized base are its own
        steps, guidance = config.class_sampling(family)
        class_folder = class_image_folder(
            config.cache_root,
            model_sha256=f"{model_sha256}+{config.quantize_base}" if quantized else model_sha256,
            prompt=config.class_prompt,
            resolution=resolution,
            steps=steps,
            guidance=guidance,
            prompt_length=family.prompt_length(config),
        )
        if not missing_class_images(class_folder, config.num_class_images):
            class_images = _read_class_images(class_folder, config, resolution)
    prompts = {}
    if not config.train_text_encoder:  # trained encoders embed the prompts at every step
        found = {text: cache.prompt(text, config) for text in _prompts(config)}
        prompts = {text: embedding for text, embedding in found.items() if embedding is not None}
    return InputPlan(
        cache,
        images,
        class_folder,
        class_images,
        instance_latents=cache.latents(images),
        class_latents=cache.latents(class_images) if class_images is not None else None,
        prompts=prompts,
    )


def _prompts(config) -> list[str]:
    return [config.instance_prompt, *([config.class_prompt] if config.prior_preservation else [])]


def _read_class_images(folder: Path, config, resolution: int) -> ImageSet:
    paths = [class_image_path(folder, index) for index in range(config.num_class_images)]
    return load_class_images(paths, resolution)


def frozen_inputs(plan: InputPlan, loaded, config, accelerator, monitor) -> FrozenInputs:
    """Latents and prompts from the cache, or computed with the frozen parts (and cached)."""
    if not plan.needs_frozen_parts(config):
        return _cached_inputs(plan, loaded, config, monitor)
    family, resolution, cache = loaded.family, loaded.resolution, plan.cache
    pipeline = loaded.full_pipeline()
    pipeline.to(accelerator.device)
    classes = None
    if config.prior_preservation:
        if plan.class_images is not None:
            found, images = plan.class_latents, plan.class_images
        else:  # rendered now: nothing of them can be cached yet
            found, images = None, _class_images(pipeline, plan, loaded, config, accelerator, monitor)
        classes = _encoded(cache, pipeline.vae, images, found, family, resolution)
    instances = _encoded(cache, pipeline.vae, plan.instance_images, plan.instance_latents, family, resolution)
    texts = _prompts(config)
    prompts = [family.tokenize(pipeline, text, config) for text in texts]
    if not config.train_text_encoder:  # frozen encoders: embed each prompt once
        device = accelerator.device
        prompts = [plan.prompts.get(t) or _embedded(cache, pipeline, family, t, ids, config, device)
                   for t, ids in zip(texts, prompts)]  # fmt: skip
        # The text encoders and the VAE leave the accelerator until a validation sample needs them.
        offload_frozen_parts(family, pipeline)
    class_prompt = prompts[1] if config.prior_preservation else None
    return FrozenInputs(instances, classes, prompts[0], class_prompt)


def _cached_inputs(plan: InputPlan, loaded, config, monitor) -> FrozenInputs:
    family, resolution, prior = loaded.family, loaded.resolution, config.prior_preservation
    if prior:
        monitor.class_images = plan.class_folder
        monitor.say(f"reusing {config.num_class_images} cached class images from {plan.class_folder}")
    where = plan.cache.folder
    monitor.say(f"reusing cached latents and prompt embeddings from {where} (no text encoder or VAE loaded)")
    return FrozenInputs(
        instances=latent_set(plan.instance_latents, plan.instance_images, resolution, family),
        classes=latent_set(plan.class_latents, plan.class_images, resolution, family) if prior else None,
        instance_prompt=plan.prompts[config.instance_prompt],
        class_prompt=plan.prompts[config.class_prompt] if prior else None,
    )


def _encoded(cache: EncodedCache, vae, images: ImageSet, found, family, resolution: int) -> LatentSet:
    """`found` (the cached latents of `images`), or the VAE's, then cached."""
    if found is not None:
        return latent_set(found, images, resolution, family)
    encoded = encode_latents(vae, images, resolution, family=family)
    cache.store_latents(images, encoded.latents)
    return encoded


def _embedded(cache: EncodedCache, pipeline, family, prompt: str, ids, config, device):
    with torch.no_grad():
        embeddings = family.encode_prompt(family.text_encoders(pipeline), ids, device)
    cache.store_prompt(prompt, config, embeddings)
    return embeddings


def _class_images(pipeline, plan: InputPlan, loaded, config, accelerator, monitor) -> ImageSet:
    folder, family, resolution = plan.class_folder, loaded.family, loaded.resolution
    missing = missing_class_images(folder, config.num_class_images)
    if missing and accelerator.is_main_process:
        steps, guidance = config.class_sampling(family)
        with monitor.class_image_progress(len(missing), folder) as advance:
            generate_class_images(
                pipeline,
                folder,
                missing,
                prompt=config.class_prompt,
                resolution=resolution,
                steps=steps,
                guidance=guidance,
                batch_size=config.class_batch_size,
                family=family,
                prompt_length=family.prompt_length(config),
                on_batch=advance,
            )
    elif accelerator.is_main_process:
        monitor.say(f"reusing {config.num_class_images} cached class images from {folder}")
    accelerator.wait_for_everyone()
    monitor.class_images = folder
    return _read_class_images(folder, config, resolution)


def offload_frozen_parts(family, pipeline) -> None:
    """Move the text encoders and the VAE to the CPU once latents and prompts are cached."""
    if pipeline.device.type == "cpu":
        return
    for module in (*family.text_encoders(pipeline), pipeline.vae):
        module.to("cpu")
