"""The training loop. Everything is set up before it (see finetune.py); here the reader sees the step.

Determinism: all randomness of a step is drawn from generators seeded afresh, never
from state carried over from earlier steps: which images, and each image's noise and
timestep, by the image's place in the run's stream of examples (so the split over
processes and micro-batches does not change them); LoRA dropout by (seed, step,
process). A run resumed from the checkpoint of step k therefore draws exactly what
the uninterrupted run drew, and on CPU ends bit-identical.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import time
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from headshot.families.base import PromptEmbeddings
from headshot.training.checkpoints import TrainingState
from headshot.training.data import LatentSet
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.loss import Batch, LossSettings, dreambooth_loss


@dataclass
class Prompts:
    """Instance and class prompts: cached embeddings, or token ids when the encoders train."""

    family: object  # the model's Family: it encodes token ids when the encoders train
    instance: PromptEmbeddings | list[torch.Tensor]
    prior: PromptEmbeddings | list[torch.Tensor] | None
    text_encoders: list = field(default_factory=list)  # the (wrapped) trained encoders, if any

    def embed(self, which, count: int, device) -> PromptEmbeddings:
        if self.text_encoders:
            which = self.family.encode_prompt(self.text_encoders, which, device)
        return which.to(device).repeat(count)


@dataclass
class TrainingRun:
    config: FinetuneConfig
    accelerator: object
    family: object  # the model's Family: how a prediction is made
    denoiser: torch.nn.Module  # UNet or transformer, prepared (DDP-wrapped with several processes)
    trainable: list[torch.nn.Parameter]
    optimizer: object
    lr_scheduler: object
    objective: object  # families/objectives.py: noisy input, timesteps, target, weights
    instances: LatentSet
    classes: LatentSet | None
    prompts: Prompts
    on_step_end: object  # callable(state, logs, stopping): checkpoints, validation, logging


def step_seed(*parts: object) -> int:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@lru_cache(maxsize=64)
def _epoch_order(count: int, seed: int, epoch: int, stream: str) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(step_seed(seed, epoch, stream))
    return tuple(torch.randperm(count, generator=generator).tolist())


def example_indices(count: int, seed: int, start: int, size: int, stream: str) -> list[int]:
    """Positions start..start+size of an endless sequence of seeded shuffles of range(count)."""
    return [_epoch_order(count, seed, k // count, stream)[k % count] for k in range(start, start + size)]


def make_batch(run: TrainingRun, step: int, micro: int) -> Batch:
    """This process's share of micro-batch `micro` of optimizer step `step`."""
    cfg, acc = run.config, run.accelerator
    size = cfg.batch_size
    start = ((step * cfg.gradient_accumulation + micro) * acc.num_processes + acc.process_index) * size
    streams = [("instance", run.instances)] + ([("class", run.classes)] if run.classes is not None else [])
    parts = [
        (latents, example_indices(len(latents), cfg.seed, start, size, name)) for name, latents in streams
    ]
    noise_seeds = [
        step_seed(cfg.seed, name, "noise", k) for name, _ in streams for k in range(start, start + size)
    ]
    device = acc.device
    prompts = [run.prompts.embed(run.prompts.instance, size, device)]
    if run.classes is not None:
        prompts.append(run.prompts.embed(run.prompts.prior, size, device))
    return Batch(
        latents=torch.cat([s.latents[i] for s, i in parts]).to(device),
        masks=torch.cat([s.masks[i] for s, i in parts]).to(device),
        time_ids=torch.cat([s.time_ids[i] for s, i in parts]).to(device),
        prompts=PromptEmbeddings.cat(prompts),
        num_instance=size,
        noise_seeds=noise_seeds,
    )


def seed_global_rng(seed: int, step: int, process: int) -> None:
    """Anything drawing from the global generators (LoRA dropout) sees per-step seeds too."""
    value = step_seed(seed, step, process, "global")
    torch.default_generator.manual_seed(value)  # torch.manual_seed would also reseed every backend
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(value)
    random.seed(value)
    np.random.seed(value % 2**32)


def train(run: TrainingRun, state: TrainingState, progress) -> TrainingState:
    cfg, acc = run.config, run.accelerator
    settings = LossSettings(cfg.prior_loss_weight, cfg.face_loss_weight, cfg.training_guidance)
    wrapped = [run.denoiser, *run.prompts.text_encoders]
    last = cfg.steps if cfg.stop_after_steps is None else min(cfg.steps, state.step + cfg.stop_after_steps)
    while state.step < last:
        started = time.perf_counter()
        step = state.step
        seed_global_rng(cfg.seed, step, acc.process_index)
        logs = {"loss": 0.0, "instance_loss": 0.0, "prior_loss": 0.0}
        for micro in range(cfg.gradient_accumulation):
            syncing = micro == cfg.gradient_accumulation - 1  # gradients all-reduce once per step
            with contextlib.ExitStack() as stack:
                if not syncing:
                    for model in wrapped:
                        stack.enter_context(acc.no_sync(model))
                with acc.autocast():
                    batch = make_batch(run, step, micro)  # runs trained text encoders: inside no_sync
                    loss, instance_loss, prior_loss = dreambooth_loss(
                        run.family, run.denoiser, run.objective, batch, settings
                    )
                acc.backward(loss / cfg.gradient_accumulation)
            logs["loss"] += loss.detach() / cfg.gradient_accumulation
            logs["instance_loss"] += instance_loss.detach() / cfg.gradient_accumulation
            if prior_loss is not None:
                logs["prior_loss"] += prior_loss.detach() / cfg.gradient_accumulation
        acc.clip_grad_norm_(run.trainable, cfg.max_grad_norm)
        run.optimizer.step()
        run.lr_scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)

        # One all-gather for every logged number: the mean over processes.
        values = acc.gather(torch.stack([torch.as_tensor(v, device=acc.device) for v in logs.values()])[None])
        logs = dict(zip(logs, values.mean(dim=0).tolist()))
        logs["lr"] = run.lr_scheduler.get_last_lr()[0]
        state.step += 1
        state.losses.append(logs["loss"])
        state.step_seconds.append(time.perf_counter() - started)  # the step only, not checkpoints
        state.wall_time_s += state.step_seconds[-1]
        progress(state, logs)
        # stopping early on purpose (stop_after_steps): the caller checkpoints this step.
        run.on_step_end(state, logs, state.step == last < cfg.steps)
    return state


def trainable_parameters(modules: list[torch.nn.Module]) -> list[torch.nn.Parameter]:
    return [p for module in modules for p in module.parameters() if p.requires_grad]


def make_optimizer(config: FinetuneConfig, denoiser: torch.nn.Module, text_encoders: list[torch.nn.Module]):
    groups = [{"params": trainable_parameters([denoiser]), "lr": config.lr}]
    if text_encoders:
        groups.append(
            {"params": trainable_parameters(text_encoders), "lr": config.text_encoder_lr or config.lr}
        )
    if config.use_8bit_adam:
        optimizer_class = adam_8bit()
    else:
        optimizer_class = torch.optim.AdamW
    return optimizer_class(groups, weight_decay=config.weight_decay)


def adam_8bit():
    """bitsandbytes' AdamW8bit, or a clear error (checked before any model is loaded)."""
    from headshot.errors import HeadshotError

    if not torch.cuda.is_available():
        raise HeadshotError(
            "option 'use_8bit_adam': needs a CUDA GPU and bitsandbytes (pip install -e '.[cuda]'); "
            "this machine has no CUDA device, use the default AdamW"
        )
    try:
        import bitsandbytes
    except ImportError:
        raise HeadshotError(
            "option 'use_8bit_adam': bitsandbytes is not installed (pip install -e '.[cuda]'; CUDA only)"
        ) from None
    return bitsandbytes.optim.AdamW8bit


def make_lr_scheduler(config: FinetuneConfig, optimizer):
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler,
        optimizer=optimizer,
        num_warmup_steps=config.lr_warmup_steps,
        num_training_steps=config.steps,
    )
