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

from headshot.records import atomic_save_image, atomic_write_json, sha256_bytes
from headshot.samples import SUBJECT_VARIANTS, grace_hopper
from headshot.training.dataset_record import DatasetRecord, PhotoRecord

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
