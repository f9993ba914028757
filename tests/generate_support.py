"""Test data for `generate`: a real subject folder with a real LoRA and dataset record.

The LoRA is a peft adapter added to the tiny model's UNet with seeded random (non-zero)
weights, saved with diffusers' own `save_lora_weights`, so `load_lora_weights` reads it
exactly as it reads one written by `headshot finetune`. The dataset's identity
embeddings come from dlib run on the bundled public-domain portraits.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import ImageOps

from headshot.layout import SubjectLayout
from headshot.records import atomic_save_image, atomic_write_json, sha256_file

IDENTIFIER, CLASS_NOUN = "sks", "person"


@cache
def hopper_photos():
    """Three views of the subject (Grace Hopper) and their dlib embeddings."""
    from headshot.analysis.faces import detect_faces
    from headshot.samples import grace_hopper

    original = grace_hopper()
    width, height = original.size
    views = [original, ImageOps.mirror(original), original.crop((0, 0, width, int(height * 0.9)))]
    return [(view, detect_faces(view)[0].embedding) for view in views]


def write_dataset(folder: Path, family: str, resolution: int) -> None:
    from headshot.dataset_record import DatasetRecord, PhotoRecord

    photos = []
    for number, (view, embedding) in enumerate(hopper_photos()):
        image, mask = f"images/hopper-{number}.png", f"masks/hopper-{number}.png"
        atomic_save_image(folder / image, view.resize((resolution, resolution)))
        atomic_save_image(folder / mask, view.convert("L").resize((resolution, resolution)))
        photos.append(
            PhotoRecord(
                source=f"hopper-{number}.jpg",
                sha256=sha256_file(folder / image),
                verdict="accepted",
                image=image,
                mask=mask,
                embedding=[float(x) for x in embedding],
            )
        )
    record = DatasetRecord(subject=folder.parent.name, family=family, resolution=resolution, photos=photos)
    atomic_write_json(folder / "dataset.json", record.model_dump(mode="json"))


def write_lora(folder: Path, model: Path, family: str, seed: int = 0) -> None:
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from headshot.layout import LORA_FILE
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model
    from headshot.training.training_record import TrainingRecord

    loaded = load_base_model(resolve_base_model(str(model)))
    unet = loaded.pipeline.unet
    unet.add_adapter(
        LoraConfig(
            r=4,
            lora_alpha=4,
            init_lora_weights="gaussian",
            target_modules=["to_q", "to_k", "to_v", "to_out.0"],
        )
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in unet.named_parameters():
            if "lora_B" in name:  # peft starts B at zero (a no-op adapter); make it act
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    type(loaded.pipeline).save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet), safe_serialization=True
    )
    record = TrainingRecord(
        subject=folder.parent.name,
        identifier=IDENTIFIER,
        class_noun=CLASS_NOUN,
        instance_prompt=f"a photo of {IDENTIFIER} {CLASS_NOUN}",
        class_prompt=f"a photo of {CLASS_NOUN}",
        base_model=str(model),
        base_model_sha256=loaded.fingerprint(),
        family=family,
        resolution=loaded.resolution,
        lora_sha256=sha256_file(folder / LORA_FILE),
        dataset_sha256="0" * 64,
        steps=1,
    )
    atomic_write_json(folder / "training.json", record.model_dump(mode="json"))


def make_subject(root: Path, model: Path, family: str, name: str = "ada") -> SubjectLayout:
    """outputs/<name>/{dataset,lora} ready for `headshot generate`."""
    layout = SubjectLayout.for_subject(root, name)
    write_dataset(layout.dataset, family, 64)
    write_lora(layout.lora, model, family)
    return layout


def write_template(folder: Path, stem: str, **fields) -> Path:
    """A small valid template file `<stem>.yaml` (tiny-model settings), with fields overridden."""
    import yaml

    data = {
        "name": stem,
        "description": "test scene",
        "prompt": {"framing": "photo of {identifier} {class_noun}", "wardrobe": "wearing a {colour} shirt"},
        "negative_prompt": "plastic skin",
        "sampler": "euler",
        "steps": 3,
        "guidance": 5.0,
        "variations": {"colour": ["navy", "white"]},
    }
    data.update(fields)
    path = Path(folder) / f"{stem}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


_PRISTINE: dict[str, Path] = {}


def subject_copy(tmp_path: Path, pristine_root: Path, model: Path, family: str) -> SubjectLayout:
    """A fresh copy of a subject folder built once per session (building takes seconds)."""
    import shutil

    if family not in _PRISTINE:
        _PRISTINE[family] = make_subject(pristine_root / family, model, family).root
    target = tmp_path / "outputs" / "ada"
    shutil.copytree(_PRISTINE[family], target)
    return SubjectLayout(target)


def generate_args(layout: SubjectLayout, *templates: Path, **options) -> list[str]:
    """`headshot generate` arguments for a test run on the given template files.

    A tiny model draws no face, so its run delivers nothing: with `allow_empty` (the default
    here, for tests of rendering and resuming) that still exits 0; a boolean option is a flag.
    """
    args = ["generate", str(layout.lora)]
    for template in templates:
        args += ["--template", str(template)]
    for name, value in {"allow_empty": True, **options}.items():
        flag = f"--{name.replace('_', '-')}"
        args += ([flag] if value else []) if isinstance(value, bool) else [flag, str(value)]
    return args


def subprocess_env() -> dict[str, str]:
    """Environment for a `python -m headshot` child: this worktree's code, one thread."""
    import os

    paths = [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "OMP_NUM_THREADS": "1"}
