"""The demo's sample subject: a small "selfie" set made from public-domain portraits.

The photos ship inside installed packages: matplotlib's `grace_hopper.jpg` (the
subject) and scikit-image's `astronaut` (Eileen Collins, a different person). Both
are US government works in the public domain. The set mimics a phone camera roll:
crops, a mirror image, small rotations and exposure changes, plus one photo of a
different person and one blurred shot, which `prepare` must reject.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from headshot.records import atomic_save_image


def grace_hopper() -> Image.Image:
    import matplotlib.cbook

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as handle:
        return Image.open(handle).convert("RGB")


def astronaut() -> Image.Image:
    import skimage.data

    return Image.fromarray(skimage.data.astronaut()).convert("RGB")


def _crop(box: tuple[float, float, float, float]) -> Callable[[Image.Image], Image.Image]:
    def apply(image: Image.Image) -> Image.Image:
        w, h = image.size
        return image.crop((int(box[0] * w), int(box[1] * h), int(box[2] * w), int(box[3] * h)))

    return apply


def _rotate(degrees: float) -> Callable[[Image.Image], Image.Image]:
    return lambda image: image.rotate(
        degrees, resample=Image.BICUBIC, expand=False, fillcolor=(128, 128, 128)
    )


def _exposure(factor: float) -> Callable[[Image.Image], Image.Image]:
    return lambda image: ImageEnhance.Brightness(image).enhance(factor)


def _chain(*steps: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    def apply(image: Image.Image) -> Image.Image:
        for step in steps:
            image = step(image)
        return image

    return apply


# name -> (source portrait, transformation). Deterministic: the same set every time.
SUBJECT_VARIANTS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "hopper_01_original": _chain(),
    "hopper_02_mirror": ImageOps.mirror,
    "hopper_03_crop_tight": _crop((0.08, 0.0, 0.92, 0.8)),
    "hopper_04_rotate_left": _rotate(6),
    "hopper_05_rotate_right": _rotate(-5),
    "hopper_06_brighter": _exposure(1.25),
    "hopper_07_darker": _chain(_exposure(0.8), _crop((0.0, 0.02, 1.0, 0.95))),
    "hopper_08_warm_mirror": _chain(
        ImageOps.mirror,
        lambda image: Image.fromarray(
            np.clip(np.asarray(image, dtype=np.float32) * [1.06, 1.0, 0.92], 0, 255).astype(np.uint8)
        ),
    ),
}


def make_sample_selfies(out_dir: Path, with_rejects: bool = True) -> list[Path]:
    """Write the sample selfie set as JPEGs into `out_dir`; returns the files written."""
    out_dir = Path(out_dir)
    subject = grace_hopper()
    written = []
    for name, transform in SUBJECT_VARIANTS.items():
        path = out_dir / f"{name}.jpg"
        atomic_save_image(path, transform(subject), quality=92)
        written.append(path)
    if with_rejects:
        rejects = {
            "other_person_astronaut": astronaut(),
            "hopper_blurred": subject.filter(ImageFilter.GaussianBlur(6)),
        }
        for name, image in rejects.items():
            path = out_dir / f"{name}.jpg"
            atomic_save_image(path, image, quality=92)
            written.append(path)
    return written
