"""Training objectives: what a noisy input, its timestep and the regression target are.

- `NoiseObjective` (Stable Diffusion): DDPM forward noising at an integer timestep; the
  target is the noise (epsilon) or the velocity (v-prediction), as the model's scheduler
  config says; min-SNR-gamma weights and offset noise are options.
- `FlowMatchingObjective` (FLUX): rectified flow. With s in (0, 1),
  x_s = (1 - s) x0 + s noise, and the target is the velocity d x_s / d s = noise - x0.
  s is drawn logit-normal (sigmoid of a normal draw, concentrating on the middle of the
  path); "resolution_shift" then moves it the way the model's own sampler shifts its sigmas
  for the image's token count, s' = e^mu / (e^mu + 1/s - 1); "uniform" draws s uniformly.
  How mu follows the token count is the family's rule (`shift_rule`): FLUX.1 is linear in
  tokens between its scheduler's two anchors, FLUX.2 fits mu empirically (its own formula).

Every random number of an example comes from that example's own seed (one generator per
row, in a fixed order), so an example draws the same in any process or micro-batch and a
resumed run draws what the uninterrupted run drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class NoiseObjective:
    scheduler: object  # a DDPMScheduler built from the model's scheduler config
    snr_gamma: float | None
    noise_offset: float

    def sample(self, latents: torch.Tensor, seeds: list[int]):
        shape, count = latents.shape[1:], self.scheduler.config.num_train_timesteps
        noises, steps = [], []
        for seed in seeds:
            generator = torch.Generator().manual_seed(seed)
            noise = torch.randn(shape, generator=generator)
            if self.noise_offset:
                # Offset noise lets the model learn overall brightness (dark studio backdrops).
                noise = noise + self.noise_offset * torch.randn(shape[:1] + (1, 1), generator=generator)
            noises.append(noise)
            steps.append(torch.randint(0, count, (1,), generator=generator))
        noise = torch.stack(noises).to(latents.device, latents.dtype)
        timesteps = torch.cat(steps).to(latents.device)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        if self.scheduler.config.prediction_type == "v_prediction":
            target = self.scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return noisy, timesteps, target

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        """Min-SNR-gamma (Hang et al. 2023): damp the easy, low-noise timesteps."""
        if self.snr_gamma is None:
            return torch.ones(len(timesteps), device=timesteps.device)
        from diffusers.training_utils import compute_snr

        snr = compute_snr(self.scheduler, timesteps)
        clipped = torch.clamp(snr, max=self.snr_gamma)
        if self.scheduler.config.prediction_type == "v_prediction":
            return clipped / (snr + 1)
        return clipped / snr


def resolution_mu(tokens: int, base_len: int, max_len: int, base_shift: float, max_shift: float) -> float:
    """FLUX's shift exponent for an image of `tokens` packed latent tokens (linear in tokens)."""
    slope = (max_shift - base_shift) / (max_len - base_len)
    return base_shift + slope * (tokens - base_len)


@dataclass
class FlowMatchingObjective:
    sampling: str  # "logit_normal", "resolution_shift" or "uniform"
    logit_mean: float
    logit_std: float
    base_len: int = 256
    max_len: int = 4096
    base_shift: float = 0.5
    max_shift: float = 1.15
    # Latent pixels per token side: FLUX.1 packs 2x2 patches; FLUX.2's latents come patchified (1).
    patch: int = 2
    # Image tokens -> mu; None: FLUX.1's linear rule between (base_len, base_shift) and (max_len, max_shift).
    shift_rule: Callable[[int], float] | None = None

    @classmethod
    def from_scheduler(cls, scheduler_config, config, **family_rule) -> FlowMatchingObjective:
        """The shift parameters are the model's own (its scheduler config), as at render time;
        `family_rule` sets `patch` and `shift_rule` for a family whose sampler shifts otherwise."""
        get = scheduler_config.get
        return cls(
            **family_rule,
            sampling=config.timestep_sampling,
            logit_mean=config.logit_mean,
            logit_std=config.logit_std,
            base_len=get("base_image_seq_len", 256),
            max_len=get("max_image_seq_len", 4096),
            base_shift=get("base_shift", 0.5),
            max_shift=get("max_shift", 1.15),
        )

    def mu(self, tokens: int) -> float:
        """The shift exponent for an image of `tokens` image tokens."""
        if self.shift_rule is not None:
            return self.shift_rule(tokens)
        return resolution_mu(tokens, self.base_len, self.max_len, self.base_shift, self.max_shift)

    def sigmas(self, batch: int, latent_hw: tuple[int, int], generator: torch.Generator) -> torch.Tensor:
        """`batch` timesteps s in (0, 1) for latents of `latent_hw`, drawn from `generator`."""
        if self.sampling == "uniform":
            return torch.rand(batch, generator=generator)
        normal = torch.randn(batch, generator=generator) * self.logit_std + self.logit_mean
        sigma = torch.sigmoid(normal)
        if self.sampling == "resolution_shift":
            shift = math.exp(self.mu((latent_hw[0] // self.patch) * (latent_hw[1] // self.patch)))
            sigma = shift / (shift + (1 / sigma - 1))
        return sigma

    def sample(self, latents: torch.Tensor, seeds: list[int]):
        noises, sigmas = [], []
        for seed in seeds:  # each row: its noise, then its timestep
            generator = torch.Generator().manual_seed(seed)
            noises.append(torch.randn(latents.shape[1:], generator=generator))
            sigmas.append(self.sigmas(1, tuple(latents.shape[-2:]), generator))
        noise = torch.stack(noises).to(latents.device, latents.dtype)
        sigma = torch.cat(sigmas).to(latents.device)
        s = sigma.view(-1, 1, 1, 1).to(latents.dtype)
        noisy = (1 - s) * latents + s * noise
        return noisy, sigma, noise - latents

    def weights(self, timesteps: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(timesteps), device=timesteps.device)
