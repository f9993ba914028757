"""LoRA adapters (peft) on the UNet attention and, optionally, the text encoder(s)."""

from __future__ import annotations

from pathlib import Path

import torch

from headshot.errors import HeadshotError

UNET_ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
# "all": also the transformer projections and feed-forward, and the ResNet blocks' convolutions
# and time-embedding projections. More capacity, bigger files; diffusers and kohya load both.
UNET_ALL = UNET_ATTENTION + [
    "proj_in",
    "proj_out",
    "ff.net.0.proj",
    "ff.net.2",
    "conv1",
    "conv2",
    "conv_shortcut",
    "time_emb_proj",
]
TEXT_ENCODER_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def add_lora_adapters(pipeline, config, seed: int) -> list[torch.nn.Module]:
    """Freeze the base model, add LoRA layers; returns the modules that now train.

    The LoRA down-projections are initialised from `seed`, so a run is reproducible.
    """
    from peft import LoraConfig

    for module in (pipeline.unet, pipeline.vae, *_text_encoders(pipeline)):
        module.requires_grad_(False)
    torch.manual_seed(seed)

    def lora(targets: list[str]) -> LoraConfig:
        return LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            init_lora_weights="gaussian",
            target_modules=targets,
        )

    pipeline.unet.add_adapter(lora(UNET_ALL if config.unet_lora_layers == "all" else UNET_ATTENTION))
    trained = [pipeline.unet]
    if config.train_text_encoder:
        for encoder in _text_encoders(pipeline):
            encoder.add_adapter(lora(TEXT_ENCODER_TARGETS))
            trained.append(encoder)
    for module in trained:
        for parameter in module.parameters():
            if parameter.requires_grad:
                # LoRA weights train in float32 even when the frozen base runs in bf16/fp16.
                parameter.data = parameter.data.float()
    return trained


def _text_encoders(pipeline) -> list:
    from headshot.training.conditioning import text_encoders_of

    return text_encoders_of(pipeline)


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
            "resume with the model and settings it was made with, or start over without --resume"
        )
    for prefix, module in modules.items():
        for name, parameter in module.named_parameters():
            if parameter.requires_grad:
                parameter.copy_(state[f"{prefix}.{name}"])
