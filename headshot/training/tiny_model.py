"""A family's tiny model, built, pre-trained if asked, and saved (`save_tiny_model`: the
`tiny-model` command, the demo and the tests' fixtures); the family builds it from the parts
in headshot/families/tiny.py.

Why pre-train: a few seconds of pre-training for a tiny model's denoiser make it a base model.

A random-weight UNet is not a diffusion model: its renders are ~9x the training
latents' size and it ignores its prompt, so fine-tuning it can only shrink its output,
never show what DreamBooth does. Pre-trained briefly with the real training objective
(`headshot.training.loss`) on captioned photos that ship offline, it renders latents
of the data's own scale and keeps what it learned for "a photo of person" apart from
the rest, which is what prior preservation has to protect:

- "a photo of person": the 100 faces of scikit-image's LFW subset (25x25 grey crops
  of many people, none of them the demo subject), upscaled to the model's size;
- "a photo of background": the subset's 100 non-face crops.

Only the denoiser trains (the VAE and text encoders stay as built); `pretrain_steps=0`
(the default of `save_tiny_model`) keeps the plain random model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from headshot.errors import HeadshotError

CAPTIONS = ("a photo of person", "a photo of background")


def pretraining_pixels(size: int) -> list[torch.Tensor]:
    """Per caption, the images as (n, 3, size, size) in [-1, 1]."""
    import skimage.data

    crops = skimage.data.lfw_subset()  # (200, 25, 25) in [0, 1]: 100 faces, then 100 non-faces

    def pixels(crop: np.ndarray) -> torch.Tensor:
        image = (
            Image.fromarray((crop * 255).astype(np.uint8)).convert("RGB").resize((size, size), Image.BICUBIC)
        )
        return torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)

    return [torch.stack([pixels(c) for c in crops[:100]]), torch.stack([pixels(c) for c in crops[100:]])]


def pretrain_denoiser(
    pipeline, steps: int, *, batch_size: int = 8, lr: float = 1e-3, seed: int = 0
) -> list[float]:
    """Train the pipeline's denoiser in place for `steps` AdamW steps; returns the losses."""
    from headshot.families import family_of_pipeline
    from headshot.families.base import PromptEmbeddings
    from headshot.training.finetune_config import FinetuneConfig
    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    family = family_of_pipeline(pipeline)
    size = family.resolution(pipeline)
    with torch.no_grad():
        latents = [family.encode_latents(pipeline.vae, p) for p in pretraining_pixels(size)]
        encoders = family.text_encoders(pipeline)
        prompts = [family.encode_prompt(encoders, family.tokenize(pipeline, c), "cpu") for c in CAPTIONS]
    half = batch_size // 2
    time_ids = family.time_ids((size, size), size).repeat(2 * half, 1)
    masks = torch.ones(2 * half, 1, *latents[0].shape[-2:])
    objective = family.training_objective(pipeline, FinetuneConfig(base_model="tiny", snr_gamma=None))
    denoiser = family.denoiser_of(pipeline)
    denoiser.train()
    optimizer = torch.optim.AdamW(denoiser.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    settings = LossSettings(prior_loss_weight=1.0, face_loss_weight=1.0)
    losses = []
    for step in range(steps):
        picks = [torch.randint(0, len(group), (half,), generator=generator) for group in latents]
        batch = Batch(
            latents=torch.cat([group[index] for group, index in zip(latents, picks)]),
            masks=masks,
            time_ids=time_ids,
            prompts=PromptEmbeddings.cat([p.repeat(half) for p in prompts]),
            num_instance=2 * half,
            noise_seeds=[seed * 1_000_003 + step * 2 * half + row for row in range(2 * half)],
        )
        loss, _, _ = dreambooth_loss(family, denoiser, objective, batch, settings)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    denoiser.eval()
    denoiser.requires_grad_(False)
    return losses


def build_tiny_pipeline(family: str, seed: int = 0, pretrain_steps: int = 0):
    """Build (not save) a random-weight pipeline of the given family.

    `pretrain_steps` > 0: then pre-train its denoiser briefly (`pretrain_denoiser` below), so that it
    renders latents of the data's scale and keeps "a photo of person" apart.
    """
    from headshot.families import get_family

    pipeline = get_family(family).tiny(seed)
    if pretrain_steps:
        pretrain_denoiser(pipeline, pretrain_steps, seed=seed)
    return pipeline


def save_tiny_model(family: str, out: Path, seed: int = 0, pretrain_steps: int = 0) -> Path:
    """Build a tiny model and save it in diffusers format (safetensors) under `out`."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "model_index.json").is_file():
        raise HeadshotError(f"{out}: folder exists and is not a model folder; choose an empty one")
    pipeline = build_tiny_pipeline(family, seed=seed, pretrain_steps=pretrain_steps)
    pipeline.save_pretrained(out, safe_serialization=True)
    return out
