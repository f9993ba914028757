"""Two workers filling the same cache entry at once (as two batch subjects on one base model do)
leave one valid entry: every class image whole and equal to a lone worker's, no temporary files.

The workers are two processes forked from this one with the tiny pipeline already loaded (a Ray
worker would spend its time importing torch and diffusers), lined up on a barrier so that both
render and write the same files at the same moments.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from PIL import Image

from headshot.families import get_family
from headshot.training.prior import class_image_folder, generate_class_images

COUNT = 6
SETTINGS = dict(prompt="a photo of a person", resolution=64, steps=2, guidance=1.0, family=get_family("sd15"))


def _fill(pipe, folder: Path, barrier) -> None:
    barrier.wait(timeout=60)
    generate_class_images(pipe, folder, list(range(COUNT)), batch_size=1, **SETTINGS)


def test_two_workers_filling_one_class_image_entry_leave_one_valid_entry(tiny_sd15, tmp_path):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_sd15)
    pipe.set_progress_bar_config(disable=True)
    entry = dict(model_sha256="0" * 64, steps=2, guidance=1.0, prompt=SETTINGS["prompt"], resolution=64)
    shared = class_image_folder(tmp_path / "shared", **entry)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_fill, args=(pipe, shared, barrier)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    alone = class_image_folder(tmp_path / "alone", **entry)
    generate_class_images(pipe, alone, list(range(COUNT)), batch_size=1, **SETTINGS)

    names = sorted(p.name for p in alone.iterdir())
    assert sorted(p.name for p in shared.iterdir()) == names  # nothing half-written or temporary left
    assert len(names) == COUNT + 1  # the images and settings.json
    for name in names:
        if name.endswith(".png"):
            with Image.open(shared / name) as both, Image.open(alone / name) as one:
                assert both.tobytes() == one.tobytes(), name
        else:
            assert (shared / name).read_bytes() == (alone / name).read_bytes()
