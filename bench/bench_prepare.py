"""Benchmark `headshot prepare`: photos per second on a 20-photo set of 12-megapixel images.

The set is made from the packaged public-domain portraits (the demo's selfie
variants, the astronaut and a blurred shot), enlarged to 3000x4000 / 4000x3000 with
a little deterministic sensor noise and saved as quality-92 JPEGs, like phone photos.
The goal (issue 3): the whole set prepared for SDXL (1024 px crops) in under 30 s
on 2 CPU cores. Prints absolute times and, measured in the same run, the ratios to
the bare floor (only decoding the JPEGs) and of 2 worker processes to 1.

    python bench/bench_prepare.py [--photos 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from headshot.samples import SUBJECT_VARIANTS, astronaut, grace_hopper
from headshot.training.intake import PrepareConfig, prepare_dataset

GOAL_SECONDS = 30.0


def _phone_sized(image: Image.Image, portrait: bool, seed: int) -> Image.Image:
    """Enlarge to cover 3000x4000 (portrait) or 4000x3000, crop around the top third."""
    width, height = (3000, 4000) if portrait else (4000, 3000)
    scale = max(width / image.width, height / image.height)
    big = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    left = (big.width - width) // 2
    top = min(max(0, int(big.height * 0.1)), big.height - height)
    big = big.crop((left, top, left + width, top + height))
    noise = np.random.default_rng(seed).normal(0, 4, (height, width, 1)).astype(np.float32)
    return Image.fromarray(np.clip(np.asarray(big, np.float32) + noise, 0, 255).astype(np.uint8))


def make_photo_set(folder: Path, count: int) -> list[Path]:
    subject = grace_hopper()
    sources = [transform(subject) for transform in SUBJECT_VARIANTS.values()]
    sources += [astronaut(), subject.filter(ImageFilter.GaussianBlur(6))]
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"photo_{index:02d}.jpg"
        # The second round turns each source the other way: a different photo, not a copy.
        portrait = (index + index // len(sources)) % 2 == 0
        image = _phone_sized(sources[index % len(sources)], portrait=portrait, seed=index)
        image.save(path, quality=92)
        paths.append(path)
    return paths


def _decode_all(paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        with Image.open(path) as image:
            image.load()
    return time.perf_counter() - started


def _prepare(photos: Path, outputs: Path, workers: int) -> tuple[float, int]:
    config = PrepareConfig(
        photos=photos, subject="bench", outputs=outputs, base_model="sdxl", workers=workers
    )
    started = time.perf_counter()
    record = prepare_dataset(config, show_summary=False)
    return time.perf_counter() - started, len(record.accepted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-prepare-") as tmp:
        root = Path(tmp)
        paths = make_photo_set(root / "photos", args.photos)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        cores = os.cpu_count()
        print(f"{len(paths)} photos, 12 megapixels each, {megabytes:.0f} MB of JPEG; {cores} CPU cores")
        decode = _decode_all(paths)
        single, accepted = _prepare(root / "photos", root / "out1", workers=1)
        parallel, accepted_parallel = _prepare(root / "photos", root / "out2", workers=args.workers)
        assert accepted == accepted_parallel
        same = (root / "out1/bench/dataset/dataset.json").read_bytes() == (
            root / "out2/bench/dataset/dataset.json"
        ).read_bytes()
    n = len(paths)
    print(f"decode only (floor):    {decode:6.2f} s  {n / decode:5.2f} photos/s")
    print(
        f"prepare, 1 worker:      {single:6.2f} s  {n / single:5.2f} photos/s  "
        f"({single / decode:.1f}x the floor)"
    )
    print(
        f"prepare, {args.workers} workers:     {parallel:6.2f} s  {n / parallel:5.2f} photos/s  "
        f"({parallel / decode:.1f}x the floor, {single / parallel:.2f}x faster than 1 worker)"
    )
    print(f"accepted {accepted} of {n}; identical dataset.json from 1 and {args.workers} workers: {same}")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"load average after the run (1, 5, 15 min): {load}  (other work on the machine slows every line)")
    verdict = "met" if parallel < GOAL_SECONDS else "MISSED"
    print(f"goal: {n} photos in under {GOAL_SECONDS:.0f} s -> {verdict} ({parallel:.1f} s)")


if __name__ == "__main__":
    main()
