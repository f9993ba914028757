"""Measuring "it learns" the corrected way, for any family: size-independent distances.

A raw RMS distance between latents grows with the latents' size and overall scale, so a
LoRA that only makes renders duller or brighter can look "nearer". Here every latent is
centred and scaled to unit norm first and compared by cosine distance (1 - cos), the
direction only. Baselines: the base model's class-prompt renders, and a LoRA of the same
shapes and per-tensor norms as the trained one but random directions (size-matched and
untrained), so that "any LoRA of this size" cannot pass for learning.
"""

from __future__ import annotations

import torch


def normalised(latents: torch.Tensor) -> torch.Tensor:
    """(n, ...) -> (n, d): each latent centred and scaled to unit length."""
    flat = latents.flatten(1).double()
    flat = flat - flat.mean(dim=1, keepdim=True)
    return flat / flat.norm(dim=1, keepdim=True)


def cosine_distance(generated: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over generated latents of the cosine distance to the nearest target latent."""
    similarity = normalised(generated) @ normalised(targets).T
    return float((1 - similarity.max(dim=1).values).mean())


def paired_cosine_distance(first: torch.Tensor, second: torch.Tensor) -> float:
    """Mean cosine distance between renders of the same seeds (how far a LoRA moved them)."""
    return float((1 - (normalised(first) * normalised(second)).sum(dim=1)).mean())


def size_matched_random(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors with the shapes and Frobenius norms of `state`'s."""
    generator = torch.Generator().manual_seed(seed)
    result = {}
    for key, value in state.items():
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        result[key] = (noise * (value.float().norm() / noise.norm())).to(value.dtype)
    return result


def lora_learning_numbers(
    pipe, lora, record, subject: torch.Tensor, renders, scratch, specificity: bool = False
) -> dict[str, float]:
    """Cosine distances to the subject's latents of: the trained LoRA's instance renders, the
    base model's class renders, and the instance renders of a size-matched untrained LoRA.
    With `specificity`, also what tells a LoRA that taught the identifier from one that pulls
    every prompt toward the subject: the trained class renders' distance to the subject, and
    how far the LoRA moved each prompt's renders from the base model's own (same seeds).

    `renders(pipe, prompt)` gives a pipeline's renders in the subject's latent layout;
    `scratch` is a folder for the untrained LoRA file."""
    from pathlib import Path

    from safetensors.torch import load_file, save_file

    lora, scratch = Path(lora), Path(scratch)
    class_renders = renders(pipe, record.class_prompt)
    base_instance = renders(pipe, record.instance_prompt) if specificity else None
    pipe.load_lora_weights(lora)
    trained = renders(pipe, record.instance_prompt)
    trained_class = renders(pipe, record.class_prompt) if specificity else None
    pipe.unload_lora_weights()
    random_lora = size_matched_random(load_file(lora / "pytorch_lora_weights.safetensors"))
    save_file(random_lora, str(scratch / "random.safetensors"))
    pipe.load_lora_weights(scratch, weight_name="random.safetensors")
    baseline = renders(pipe, record.instance_prompt)
    pipe.unload_lora_weights()
    numbers = {
        "trained instance": cosine_distance(trained, subject),
        "base class renders": cosine_distance(class_renders, subject),
        "size-matched untrained LoRA": cosine_distance(baseline, subject),
    }
    if specificity:
        numbers["trained class"] = cosine_distance(trained_class, subject)
        numbers["class prompt moved"] = paired_cosine_distance(trained_class, class_renders)
        numbers["instance prompt moved"] = paired_cosine_distance(trained, base_instance)
    return numbers
