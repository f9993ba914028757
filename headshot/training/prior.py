"""Class images for prior preservation: generated once by the base model, reused across runs.

They live in `<cache>/class_images/<key>/`, where the key hashes everything that
decides their content (base model weights, class prompt, resolution, sampler
settings). Image i is always rendered from seed i, so a run asking for more images
than are cached renders only the missing ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from headshot.records import atomic_save_image, atomic_write_json


def class_image_folder(
    cache_root: Path,
    *,
    model_sha256: str,
    prompt: str,
    resolution: int,
    steps: int,
    guidance: float,
    prompt_length: int | None = None,
) -> Path:
    settings = {
        "model_sha256": model_sha256,
        "prompt": prompt,
        "resolution": resolution,
        "steps": steps,
        "guidance": guidance,
    }
    if prompt_length is not None:  # keyed only where the family takes one: SD's keys stay as they were
        settings["max_sequence_length"] = prompt_length
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    folder = Path(cache_root) / "class_images" / key
    if not (folder / "settings.json").is_file():
        atomic_write_json(folder / "settings.json", settings)
    return folder


def class_image_path(folder: Path, index: int) -> Path:
    return folder / f"{index:05d}.png"


def missing_class_images(folder: Path, count: int) -> list[int]:
    return [i for i in range(count) if not class_image_path(folder, i).is_file()]


@torch.no_grad()
def generate_class_images(
    pipeline,
    folder: Path,
    indices: list[int],
    *,
    prompt: str,
    resolution: int,
    steps: int,
    guidance: float,
    batch_size: int,
    family,
    prompt_length: int | None = None,
    on_batch=None,
) -> None:
    """Render the class images `indices` (image i from seed i) into `folder`, atomically, as
    the family passes prompt, guidance and prompt length (the training prompts' own)."""
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        generators = [torch.Generator(device="cpu").manual_seed(index) for index in batch]
        images = pipeline(
            **family.render_kwargs([prompt] * len(batch), None, guidance, prompt_length),
            num_inference_steps=steps,
            height=resolution,
            width=resolution,
            generator=generators,
        ).images
        for index, image in zip(batch, images):
            atomic_save_image(class_image_path(folder, index), image)
        if on_batch is not None:
            on_batch(len(batch))
