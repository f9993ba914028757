"""A pipeline loaded without its frozen text encoders and VAE, completed when they are needed.

Why: a training run whose prompt embeddings and latents are cached on disk
(training/frozen_inputs.py) needs only the denoiser, the scheduler and the tokenizers; the
rest is loaded when a validation sample is rendered, or never. Completing builds the family's
own pipeline class around the modules already loaded (the denoiser with its LoRA, the
scheduler, the tokenizers), so diffusers reads only the missing components and derives its
settings (the VAE's scale factor) from them as at a normal load.
"""

from __future__ import annotations

from pathlib import Path

from headshot.errors import HeadshotError


def frozen_component_names(family) -> dict[str, None]:
    """`from_pretrained` arguments that leave the text encoders and the VAE unloaded."""
    return {name: None for name in (*family.text_encoder_names, "vae")}


def complete_pipeline(loaded, dtype):
    """The full pipeline of `loaded` (a LoadedModel loaded with frozen_component_names), sharing
    every module already loaded; the new components are on the CPU (the loader finishes it as
    any load: `loading._finish_pipeline`)."""
    family, partial, folder = loaded.family, loaded.pipeline, Path(loaded.local_path)
    present = {
        name: module
        for name, module in partial.components.items()
        if module is not None and name not in frozen_component_names(family)
    }
    try:
        pipeline = family.pipeline_class.from_pretrained(
            folder, **present, dtype=dtype, variant=loaded.spec.variant, **family.load_kwargs()
        )
    except (OSError, ValueError) as exc:
        raise HeadshotError(
            f"{folder}: could not load the text encoders and VAE for validation samples: {exc}"
        ) from None
    for name in frozen_component_names(family):
        module = getattr(pipeline, name, None)
        if module is not None:
            module.requires_grad_(False)
    return pipeline
