"""The DreamBooth loss for one batch: noise, timesteps, target, min-SNR and face-mask weights.

A batch holds instance examples first and, with prior preservation, as many class
examples after them; the class half's loss is weighted by `prior_loss_weight`.

Each example's noise and timestep come from its own seed (`Batch.noise_seeds`), so an
example draws the same whichever process and micro-batch it lands in: N processes x b
images per step train the same LoRA as 1 process x N*b images (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from headshot.training.conditioning import PromptEmbeddings


@dataclass
class Batch:
    latents: torch.Tensor  # (b, 4, h, w)
    masks: torch.Tensor  # (b, 1, h, w), 1 = face
    time_ids: torch.Tensor  # (b, 6), SDXL only
    prompts: PromptEmbeddings  # (b, ...)
    num_instance: int  # the first num_instance rows are the subject; the rest class images
    noise_seeds: list[int]  # one per row: that example's noise, offset and timestep


@dataclass
class LossSettings:
    prior_loss_weight: float
    snr_gamma: float | None
    noise_offset: float
    face_loss_weight: float


def dreambooth_loss(unet, scheduler, batch: Batch, settings: LossSettings):
    """Returns (loss, instance_loss, prior_loss); all randomness comes from `batch.noise_seeds`."""
    latents = batch.latents
    noise, timesteps = _draw_noise(batch, settings, scheduler.config.num_train_timesteps)
    noise, timesteps = noise.to(latents.device, latents.dtype), timesteps.to(latents.device)
    noisy = scheduler.add_noise(latents, noise, timesteps)

    conditioning = {}
    if batch.prompts.pooled is not None:
        conditioning["added_cond_kwargs"] = {"text_embeds": batch.prompts.pooled, "time_ids": batch.time_ids}
    prediction = unet(noisy, timesteps, encoder_hidden_states=batch.prompts.hidden, **conditioning).sample

    if scheduler.config.prediction_type == "v_prediction":
        target = scheduler.get_velocity(latents, noise, timesteps)
    else:
        target = noise
    error = (prediction.float() - target.float()) ** 2
    # Face-mask weighting: the face region counts face_loss_weight times the rest.
    weights = 1.0 + (settings.face_loss_weight - 1.0) * batch.masks.float()
    per_example = (error * weights).mean(dim=(1, 2, 3)) / weights.mean(dim=(1, 2, 3))
    per_example = per_example * _min_snr_weights(scheduler, timesteps, settings.snr_gamma)

    instance_loss = per_example[: batch.num_instance].mean()
    if batch.num_instance == len(per_example):
        return instance_loss, instance_loss, None
    prior_loss = per_example[batch.num_instance :].mean()
    return instance_loss + settings.prior_loss_weight * prior_loss, instance_loss, prior_loss


def _draw_noise(batch: Batch, settings: LossSettings, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's noise (plus offset noise) and timestep, from that row's own seed."""
    shape = batch.latents.shape[1:]
    noises, timesteps = [], []
    for seed in batch.noise_seeds:
        generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=generator)
        if settings.noise_offset:
            # Offset noise lets the model learn overall brightness (dark studio backdrops).
            noise = noise + settings.noise_offset * torch.randn(shape[:1] + (1, 1), generator=generator)
        noises.append(noise)
        timesteps.append(torch.randint(0, count, (1,), generator=generator))
    return torch.stack(noises), torch.cat(timesteps)


def _min_snr_weights(scheduler, timesteps: torch.Tensor, gamma: float | None) -> torch.Tensor:
    """Min-SNR-gamma (Hang et al. 2023): damp the easy, low-noise timesteps."""
    if gamma is None:
        return torch.ones(len(timesteps), device=timesteps.device)
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    if scheduler.config.prediction_type == "v_prediction":
        return clipped / (snr + 1)
    return clipped / snr
