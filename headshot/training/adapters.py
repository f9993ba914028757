"""LoRA adapters (peft) on the denoiser (the family's targets) and, optionally, the text encoder(s)."""

from __future__ import annotations

from pathlib import Path

import torch

from headshot.errors import HeadshotError
from headshot.families.sd import UNET_ALL, UNET_ATTENTION  # noqa: F401  (older imports)


def add_lora_adapters(pipeline, config, seed: int, family=None) -> list[torch.nn.Module]:
    """Freeze the base model, add LoRA layers; returns the modules that now train (denoiser first).

    The targets are the family's (`lora_layers`: attention or all). The LoRA
    down-projections are initialised from `seed`, so a run is reproducible.
    """
    if family is None:
        from headshot.families import family_of_pipeline

        family = family_of_pipeline(pipeline)
    denoiser = family.denoiser_of(pipeline)
    encoders = family.text_encoders(pipeline)
    for module in (denoiser, pipeline.vae, *encoders):
        if module is not None:  # None: deferred until a validation sample (models/deferred.py)
            module.requires_grad_(False)
    torch.manual_seed(seed)

    add_denoiser_lora(family, denoiser, config)
    trained = [denoiser]
    if config.train_text_encoder:
        for encoder in encoders:
            add_text_encoder_lora(family, encoder, config)
            trained.append(encoder)
    for module in trained:
        for parameter in module.parameters():
            if parameter.requires_grad:
                # LoRA weights train in float32 even when the frozen base runs in bf16/fp16.
                parameter.data = parameter.data.float()
    return trained


def lora_config(config, targets: list[str]):
    """The peft LoraConfig of a run's `rank`, `lora_alpha` and `lora_dropout` on `targets`."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        init_lora_weights="gaussian",
        target_modules=targets,
    )


def add_denoiser_lora(family, denoiser, config) -> None:
    """The one place the denoiser's LoRA is added: training, and the memory plan on the meta device
    (so the plan counts exactly the layers training wraps)."""
    denoiser.add_adapter(lora_config(config, family.lora_target_modules(denoiser, config.lora_layers)))


def add_text_encoder_lora(family, encoder, config) -> None:
    encoder.add_adapter(lora_config(config, family.text_encoder_lora_targets))


def lora_parameter_count(module) -> int:
    """Parameters of the LoRA layers peft added to `module`."""
    return sum(p.numel() for name, p in module.named_parameters() if "lora_" in name)


def trainable_state(modules: dict[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    """Every trainable tensor by a stable name: what a checkpoint must restore exactly."""
    return {
        f"{prefix}.{name}": parameter.detach().cpu().contiguous()
        for prefix, module in modules.items()
        for name, parameter in module.named_parameters()
        if parameter.requires_grad
    }


@torch.no_grad()
def load_trainable_state(
    modules: dict[str, torch.nn.Module], state: dict[str, torch.Tensor], source: Path
) -> None:
    """Copy a checkpoint's LoRA tensors into the model; `source` names it in the error."""
    expected = trainable_state(modules)
    problem = None
    if set(expected) != set(state):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        problem = f"missing {missing[:2]}" if missing else f"unexpected {extra[:2]}"
    else:
        wrong = [name for name in expected if expected[name].shape != state[name].shape]
        if wrong:
            name = wrong[0]
            problem = f"{name} has shape {tuple(state[name].shape)}, the model {tuple(expected[name].shape)}"
    if problem:
        raise HeadshotError(
            f"{source}: the checkpoint does not match the model's LoRA layers ({problem}); "
            "resume with the model and settings it was made with, or start over with --restart"
        )
    for prefix, module in modules.items():
        for name, parameter in module.named_parameters():
            if parameter.requires_grad:
                parameter.copy_(state[f"{prefix}.{name}"])
