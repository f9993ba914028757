"""The DreamBooth loss for one batch: the family's objective, face-mask and prior weights.

A batch holds instance examples first and, with prior preservation, as many class
examples after them; the class half's loss is weighted by `prior_loss_weight`. The
family turns latents into the denoiser's input and back (FLUX packs 2x2 patches), so
the prediction, the target and the face mask all share the VAE's latent grid here.

Each example's noise and timestep come from its own seed (`Batch.noise_seeds`), so an
example draws the same whichever process and micro-batch it lands in: N processes x b
images per step train the same LoRA as 1 process x N*b images (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from headshot.families.base import PromptEmbeddings


@dataclass
class Batch:
    latents: torch.Tensor  # (b, c, h, w)
    masks: torch.Tensor  # (b, 1, h, w), 1 = face
    time_ids: torch.Tensor  # (b, k): per-image extra conditioning (SDXL: 6; others: 0)
    prompts: PromptEmbeddings  # (b, ...)
    num_instance: int  # the first num_instance rows are the subject; the rest class images
    noise_seeds: list[int]  # one per row: that example's noise, offset and timestep


@dataclass
class LossSettings:
    prior_loss_weight: float
    face_loss_weight: float
    guidance: float = 1.0  # fed to a guidance-distilled denoiser's guidance embedding (FLUX.1-dev)


def dreambooth_loss(family, denoiser, objective, batch: Batch, settings: LossSettings):
    """Returns (loss, instance_loss, prior_loss); all randomness comes from `batch.noise_seeds`."""
    noisy, timesteps, target = objective.sample(batch.latents, batch.noise_seeds)
    prediction = family.predict(denoiser, noisy, timesteps, batch.prompts, batch.time_ids, settings.guidance)
    error = (prediction.float() - target.float()) ** 2
    # Face-mask weighting: the face region counts face_loss_weight times the rest.
    weights = 1.0 + (settings.face_loss_weight - 1.0) * batch.masks.float()
    per_example = (error * weights).mean(dim=(1, 2, 3)) / weights.mean(dim=(1, 2, 3))
    per_example = per_example * objective.weights(timesteps)

    instance_loss = per_example[: batch.num_instance].mean()
    if batch.num_instance == len(per_example):
        return instance_loss, instance_loss, None
    prior_loss = per_example[batch.num_instance :].mean()
    return instance_loss + settings.prior_loss_weight * prior_loss, instance_loss, prior_loss
