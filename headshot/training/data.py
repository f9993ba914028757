"""Dataset folder -> training tensors: images, face masks, VAE latents (cached once per run).

The VAE is always frozen, so every image is encoded exactly once, before the first
step; the training loop only ever sees latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from headshot.dataset_record import DatasetRecord, dataset_json, read_dataset
from headshot.errors import HeadshotError
from headshot.records import sha256_tree


@dataclass
class ImageSet:
    """Images at the training resolution with their per-pixel loss masks and SDXL sizes."""

    pixels: torch.Tensor  # (n, 3, res, res) in [-1, 1]
    masks: torch.Tensor  # (n, 1, res, res) in [0, 1]; 1 = face (all ones when unknown)
    original_sizes: list[tuple[int, int]]  # (height, width) of each crop before resizing
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class LatentSet:
    latents: torch.Tensor  # (n, c, res/8, res/8), scaled (and shifted) as the denoiser expects
    masks: torch.Tensor  # (n, 1, res/8, res/8): the face share of each latent cell
    time_ids: torch.Tensor  # (n, k): per-image extra conditioning (SDXL: 6 numbers; others: none)

    def __len__(self) -> int:
        return len(self.latents)


def read_training_dataset(folder: Path) -> DatasetRecord:
    """The dataset record, with every listed image readable at the recorded resolution."""
    folder = Path(folder)
    if folder.is_dir() and not any(folder.iterdir()):
        raise HeadshotError(f"{folder}: the dataset folder is empty (run `headshot prepare` first)")
    record = read_dataset(folder)
    for photo in record.accepted:
        for relative in (photo.image, photo.mask):
            path = folder / relative
            try:
                with Image.open(path) as image:
                    image.verify()
                with Image.open(path) as image:
                    size = image.size
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                raise HeadshotError(f"{path}: not a readable image ({exc})") from None
            if size != (record.resolution, record.resolution):
                raise HeadshotError(
                    f"{path}: is {size[0]}x{size[1]} but {dataset_json(folder)} says the dataset is "
                    f"{record.resolution}x{record.resolution}; re-run `headshot prepare`"
                )
    return record


def dataset_sha256(folder: Path, record: DatasetRecord) -> str:
    folder = Path(folder)
    files = [dataset_json(folder)]
    for photo in record.accepted:
        files += [folder / photo.image, folder / photo.mask]
    return sha256_tree(files, folder)


def _to_pixels(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _to_mask(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(array)[None]


def load_instance_images(folder: Path, record: DatasetRecord) -> ImageSet:
    folder = Path(folder)
    pixels, masks, sizes, names = [], [], [], []
    for photo in record.accepted:
        with Image.open(folder / photo.image) as image:
            pixels.append(_to_pixels(image))
        with Image.open(folder / photo.mask) as mask:
            masks.append(_to_mask(mask))
        if photo.crop_box is not None:
            left, top, right, bottom = photo.crop_box
            sizes.append((bottom - top, right - left))
        else:
            sizes.append((record.resolution, record.resolution))
        names.append(photo.source)
    return ImageSet(torch.stack(pixels), torch.stack(masks), sizes, names)


def load_class_images(paths: list[Path], resolution: int) -> ImageSet:
    pixels = []
    for path in paths:
        with Image.open(path) as image:
            pixels.append(_to_pixels(image.resize((resolution, resolution), Image.BICUBIC)))
    stack = torch.stack(pixels)
    masks = torch.ones(len(paths), 1, resolution, resolution)
    return ImageSet(stack, masks, [(resolution, resolution)] * len(paths), [p.name for p in paths])


@torch.no_grad()
def encode_latents(vae, images: ImageSet, resolution: int, batch_size: int = 8, family=None) -> LatentSet:
    """Encode with the frozen VAE (its distribution's mean: deterministic, cacheable).

    `family` scales (or patchifies and normalises) the latents as its pipeline does and adds
    its per-image conditioning (SDXL's time ids); without one: SD's scaling, no conditioning.
    """
    from headshot.families.base import Family

    device, dtype = vae.device, vae.dtype
    encoder = family if family is not None else Family()
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images.pixels[start : start + batch_size].to(device, dtype)
        chunks.append(encoder.encode_latents(vae, batch).float().cpu().contiguous())
    # Contiguous: the VAE returns channels-last latents, and a cached copy (frozen_inputs.py) is
    # contiguous; the same layout makes a cached run equal an uncached one to the last bit.
    return latent_set(torch.cat(chunks), images, resolution, family)


def latent_set(latents: torch.Tensor, images: ImageSet, resolution: int, family=None) -> LatentSet:
    """Encoded (or cached) latents of `images` with their latent-grid masks and conditioning."""
    # Area-average the pixel mask down to the latent grid: a latent's share of face.
    masks = torch.nn.functional.adaptive_avg_pool2d(images.masks, latents.shape[-2:])
    if family is None:
        time_ids = torch.zeros(len(images), 0)
    else:
        time_ids = torch.stack([family.time_ids(size, resolution) for size in images.original_sizes])
    return LatentSet(latents, masks, time_ids)
