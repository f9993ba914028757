"""What the UNet is conditioned on: prompt embeddings (both families) and SDXL's time ids.

The encoding mirrors the diffusers pipelines exactly (SD1.5: the last hidden state;
SDXL: the penultimate hidden states of both encoders side by side, and the pooled
projection of the second), so a LoRA trained here behaves the same at render time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PromptEmbeddings:
    hidden: torch.Tensor  # (n, tokens, cross_attention_dim)
    pooled: torch.Tensor | None  # (n, pooled_dim), SDXL only

    def repeat(self, count: int) -> PromptEmbeddings:
        pooled = None if self.pooled is None else self.pooled.repeat(count, 1)
        return PromptEmbeddings(self.hidden.repeat(count, 1, 1), pooled)

    def to(self, device, dtype=None) -> PromptEmbeddings:
        pooled = None if self.pooled is None else self.pooled.to(device, dtype)
        return PromptEmbeddings(self.hidden.to(device, dtype), pooled)

    @staticmethod
    def cat(parts: list[PromptEmbeddings]) -> PromptEmbeddings:
        pooled = None if parts[0].pooled is None else torch.cat([p.pooled for p in parts])
        return PromptEmbeddings(torch.cat([p.hidden for p in parts]), pooled)


def text_encoders_of(pipeline) -> list:
    return [e for e in (pipeline.text_encoder, getattr(pipeline, "text_encoder_2", None)) if e is not None]


def tokenize(pipeline, prompt: str) -> list[torch.Tensor]:
    """One (1, 77) id tensor per text encoder."""
    tokenizers = [t for t in (pipeline.tokenizer, getattr(pipeline, "tokenizer_2", None)) if t is not None]
    return [
        tokenizer(
            prompt,
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        for tokenizer in tokenizers
    ]


def encode_prompt(text_encoders: list, token_ids: list[torch.Tensor], device) -> PromptEmbeddings:
    """Differentiable when the encoders carry trainable LoRA layers (they may be DDP-wrapped)."""
    if len(text_encoders) == 1:
        return PromptEmbeddings(text_encoders[0](token_ids[0].to(device))[0], None)
    hidden, pooled = [], None
    for encoder, ids in zip(text_encoders, token_ids):
        output = encoder(ids.to(device), output_hidden_states=True)
        pooled = output[0]  # the last encoder's projected pooled output (text_embeds)
        hidden.append(output.hidden_states[-2])
    return PromptEmbeddings(torch.cat(hidden, dim=-1), pooled)


def sdxl_time_ids(
    original_size: tuple[int, int], crop_top_left: tuple[int, int], target: int
) -> torch.Tensor:
    """SDXL micro-conditioning: (original h, w, crop top, left, target h, w)."""
    return torch.tensor([*original_size, *crop_top_left, target, target], dtype=torch.float32)
