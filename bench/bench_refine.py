"""The face-detail pass's cost relative to one render, tiny models on the CPU.

One render: text to image at the model's native size, 30 steps (the templates' setting).
The pass on a real photo (the sample portrait at 512 px, so a face is found): dlib detection,
img2img of the face crop at the native size with strength 0.35 (about a third of the steps),
and the blend. On a full-size model the denoiser dominates both, so the ratio approaches
strength x (crop steps / render steps) plus the detection.

Run: OMP_NUM_THREADS=2 python bench/bench_refine.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from headshot import library_notices
from headshot.pipelines.refine import FaceRefiner, RefineOptions
from headshot.samples import grace_hopper
from headshot.training.tiny_model import save_tiny_model


def fastest(function, repeats: int) -> float:
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure(family: str, photo: Image.Image, call: dict, repeats: int) -> tuple[float, float]:
    """(one render, one face-detail pass) in seconds, fastest of `repeats`."""
    from diffusers import DiffusionPipeline

    with tempfile.TemporaryDirectory() as tmp:
        pipe = DiffusionPipeline.from_pretrained(save_tiny_model(family, Path(tmp) / family))
    pipe.set_progress_bar_config(disable=True)
    size = pipe.unet.config.sample_size * pipe.vae_scale_factor
    refiner = FaceRefiner(pipe, size, RefineOptions(enabled=True))

    def render():
        with torch.inference_mode():
            pipe(**call, height=size, width=size, generator=torch.Generator().manual_seed(0))

    return fastest(render, repeats), fastest(lambda: refiner.refine(photo, call, seed=0), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    library_notices.install()
    photo = grace_hopper().resize((512, 640), Image.LANCZOS)
    call = {"prompt": "a photo of sks person", "negative_prompt": "blurry",
            "num_inference_steps": args.steps, "guidance_scale": 5.0}  # fmt: skip
    threads = os.environ.get("OMP_NUM_THREADS")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, OMP_NUM_THREADS={threads}")
    for family in ("sd15", "sdxl"):
        t_render, t_refine = measure(family, photo, call, args.repeats)
        print(f"{family}: render {t_render * 1000:7.1f} ms, face-detail pass {t_refine * 1000:7.1f} ms, "
              f"pass / render = {t_refine / t_render:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
