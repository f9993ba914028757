"""Test data for finetune: real dataset folders built from the packaged Grace Hopper photos.

Each photo's face is found with dlib, square-cropped around it, resized to the tiny
model's 64 px, and written with an elliptical face mask and a valid DatasetRecord,
the same contract `headshot prepare` fulfils.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from headshot.dataset_record import DatasetRecord, PhotoRecord
from headshot.records import atomic_save_image, atomic_write_json, sha256_bytes
from headshot.samples import SUBJECT_VARIANTS, grace_hopper

RESOLUTION = 64


@cache
def _crops() -> tuple:
    """(name, crop image, mask image, photo record fields) per Hopper variant, computed once."""
    from headshot.analysis.faces import detect_faces

    subject = grace_hopper()
    found = []
    for name, transform in SUBJECT_VARIANTS.items():
        photo = transform(subject)
        faces = detect_faces(photo)
        assert len(faces) == 1, f"{name}: expected one face, found {len(faces)}"
        face = faces[0]
        left, top, right, bottom = face.box
        side = int(max(right - left, bottom - top) * 1.8)
        cx, cy = (left + right) // 2, (top + bottom) // 2
        side = min(side, photo.width, photo.height)
        x0 = min(max(cx - side // 2, 0), photo.width - side)
        y0 = min(max(cy - side // 2, 0), photo.height - side)
        crop_box = (x0, y0, x0 + side, y0 + side)
        crop = photo.crop(crop_box).resize((RESOLUTION, RESOLUTION), Image.LANCZOS)
        scale = RESOLUTION / side
        mask = Image.new("L", (RESOLUTION, RESOLUTION), 0)
        ImageDraw.Draw(mask).ellipse(
            [(left - x0) * scale, (top - y0) * scale, (right - x0) * scale, (bottom - y0) * scale], fill=255
        )
        fields = dict(
            width=photo.width,
            height=photo.height,
            face_box=[int(v) for v in face.box],
            landmarks5=face.landmarks5.tolist(),
            crop_box=list(crop_box),
            embedding=face.embedding.tolist(),
            sha256=sha256_bytes(np.asarray(photo).tobytes()),
        )
        found.append((name, crop, mask, fields))
    return tuple(found)


def make_dataset(folder: Path, family: str = "sd15", count: int | None = None, subject: str = "ada") -> Path:
    """Write outputs-style `<root>/<subject>/dataset/` and return the dataset folder."""
    folder = Path(folder)
    dataset = folder / subject / "dataset" if folder.name != "dataset" else folder
    photos = []
    for name, crop, mask, fields in _crops()[:count]:
        atomic_save_image(dataset / "images" / f"{name}.png", crop)
        atomic_save_image(dataset / "masks" / f"{name}.png", mask)
        photos.append(
            PhotoRecord(
                source=f"{name}.jpg",
                verdict="accepted",
                image=f"images/{name}.png",
                mask=f"masks/{name}.png",
                **fields,
            )
        )
    photos.append(
        PhotoRecord(
            source="other_person_astronaut.jpg",
            sha256="0" * 64,
            verdict="rejected",
            reason_code="many_faces",
            reason="2 faces found",
        )  # fmt: skip
    )
    record = DatasetRecord(subject=dataset.parent.name, family=family, resolution=RESOLUTION, photos=photos)
    atomic_write_json(dataset / "dataset.json", record.model_dump(mode="json"))
    return dataset


def copy_dataset(source: Path, target_root: Path, subject: str = "ada") -> Path:
    target = Path(target_root) / subject / "dataset"
    shutil.copytree(source, target)
    return target


def fast_options(**overrides) -> dict:
    """Finetune options for the tiny model: a few quick steps, small prior set, cheap validation."""
    options = dict(
        steps=6,
        rank=4,
        lr=1e-3,
        num_class_images=4,
        class_inference_steps=2,
        class_batch_size=4,
        validation_steps=0,
        validation_seeds=[0],
        validation_inference_steps=2,
        checkpoint_steps=0,
        tensorboard=False,
    )
    options.update(overrides)
    return options


# ---- "it learns": size-independent distances between renders and the subject -----------


def standardised(latents):
    """Each latent flattened, centred and scaled to unit RMS: its pattern, not its size.

    A render's size (RMS) says nothing about whom it shows: an untrained tiny model's
    renders have RMS ~9 against the training latents' ~1, and merely shrinking them
    would look like learning under a raw distance.
    """
    flat = latents.flatten(1).double()
    flat = flat - flat.mean(dim=1, keepdim=True)
    return flat / flat.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)


def nearest_distance(generated, targets) -> float:
    """Mean over the generated latents of the RMS distance to the nearest target, standardised:
    0 = the same pattern, sqrt(2) = uncorrelated, 2 = the negative image."""
    a, b = standardised(generated), standardised(targets)
    rms = ((a[:, None] - b[None]) ** 2).mean(dim=-1).sqrt()
    return float(rms.min(dim=1).values.mean())


def paired_distance(first, second) -> float:
    """Mean standardised RMS distance between renders of the same seeds."""
    return float(((standardised(first) - standardised(second)) ** 2).mean(dim=-1).sqrt().mean())


def render_latents(pipe, prompt: str, seeds=range(4), steps: int = 10, size: int = RESOLUTION):
    """The denoiser's output latents (before the VAE) for each seed, without guidance.

    A family whose pipeline returns its latents in another layout (FLUX: packed 2x2
    patches) passes its own `render` to `measure_learning` that returns them in the
    layout its training latents have.
    """
    import torch

    return torch.cat(
        [
            pipe(prompt, num_inference_steps=steps, guidance_scale=1.0, height=size, width=size,
                 output_type="latent", generator=torch.Generator().manual_seed(seed)).images
            for seed in seeds
        ]
    )  # fmt: skip


def measure_learning(
    model: Path, with_prior: Path, without_prior: Path, subject, record, render=render_latents
):
    """The distances the "it learns" claims are about, for any family.

    `with_prior` / `without_prior`: LoRA folders trained on the same dataset with and
    without prior preservation; `subject`: the dataset's latents as training encodes them.
    """
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    instance, klass = record.instance_prompt, record.class_prompt
    base_instance, base_class = render(pipe, instance), render(pipe, klass)
    pipe.load_lora_weights(with_prior)
    trained_instance, trained_class = render(pipe, instance), render(pipe, klass)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(without_prior)
    drifted_class = render(pipe, klass)
    return {
        # the untrained baseline: standardised, so size-matched by construction
        "base instance -> subject": nearest_distance(base_instance, subject),
        "trained instance -> subject": nearest_distance(trained_instance, subject),
        "trained class -> subject": nearest_distance(trained_class, subject),
        "prior class -> base class": paired_distance(trained_class, base_class),
        "no-prior class -> base class": paired_distance(drifted_class, base_class),
    }
