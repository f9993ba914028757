"""What the denoiser is conditioned on, asked of the model's family.

Each family encodes prompts exactly as its diffusers pipeline does (SD1.5: the last
hidden state; SDXL: both encoders' penultimate states side by side and a pooled
projection; FLUX: T5's sequence and CLIP's pooled vector), so a LoRA trained here
behaves the same at render time. This module only gives the trainer one place to call.
"""

from __future__ import annotations

import torch

from headshot.families.base import PromptEmbeddings

__all__ = ["PromptEmbeddings", "encode_prompt", "text_encoders_of", "tokenize"]


def text_encoders_of(family, pipeline) -> list:
    return family.text_encoders(pipeline)


def tokenize(family, pipeline, prompt: str, config=None) -> list[torch.Tensor]:
    """One (1, length) id tensor per text encoder."""
    return family.tokenize(pipeline, prompt, config)


def encode_prompt(family, text_encoders: list, token_ids: list[torch.Tensor], device) -> PromptEmbeddings:
    """Differentiable when the encoders carry trainable LoRA layers (they may be DDP-wrapped)."""
    return family.encode_prompt(text_encoders, token_ids, device)
