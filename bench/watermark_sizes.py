"""The size axis of bench_watermark.py: small copies of marked 512 px and 1024 px headshots (issue 25).

Profile pictures are shown and downloaded at 200-400 px. Each photo is brought to 512x600 and
to 1024x1024, marked with the current mark (v3) and with the v2 mark delivered 2026-12-01 to
12-06 (same identifier, same detector), and copied down to a short side of 400 ... 160 px
(Lanczos) at JPEG q70: the axis. At 256 and 200 px, other copies too: bicubic and box
(area-averaging) resampling, JPEG q60 and q80, and a 10% crop before the resize (the current
mark only: v2's failed detections search every candidate, and cost the most). False
positives: each unmarked photo at those sizes at q70, under several keys. One run prints the
recovery rate per (source, size, copy) for both marks, the false positives, the PSNR of the
marks and the detection time per size.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from PIL import Image, ImageOps

from headshot.signing import watermark, watermark_tiled_embed

SOURCES = {"512x600": (512, 600), "1024x1024": (1024, 1024)}
SIZES = (400, 320, 256, 224, 200, 176, 160)
MARKS = {"v3 (current)": 3, "v2 (2026-12-01)": 2}
RESAMPLERS = {"Lanczos": Image.LANCZOS, "bicubic": Image.BICUBIC, "box": Image.BOX}


def short_side(image: Image.Image, pixels: int, resample: int = Image.LANCZOS) -> Image.Image:
    factor = pixels / min(image.size)
    return image.resize((round(image.width * factor), round(image.height * factor)), resample)


AXIS = tuple(f"{px} px, q70" for px in SIZES)


def copies(jpeg) -> dict[str, tuple[int, callable]]:
    """(short side, make the copy) per column: the q70 Lanczos axis and the variants."""
    table = {f"{px} px, q70": (px, lambda im, px=px: jpeg(short_side(im, px), 70)) for px in SIZES}
    for px in (256, 200):
        for name, resample in list(RESAMPLERS.items())[1:]:
            table[f"{px} px {name}, q70"] = (
                px,
                lambda im, px=px, r=resample: jpeg(short_side(im, px, r), 70),
            )
        for quality in (60, 80):
            table[f"{px} px, q{quality}"] = (px, lambda im, px=px, q=quality: jpeg(short_side(im, px), q))
        table[f"10% crop, {px} px, q70"] = (
            px,
            lambda im, px=px: jpeg(short_side(im.crop(_ten_percent(im)), px), 70),
        )
    return table


def _ten_percent(image: Image.Image) -> tuple[int, int, int, int]:
    w, h = image.size
    return round(0.05 * w), round(0.05 * h), round(0.95 * w), round(0.95 * h)


def measure_photo(job: tuple) -> dict:
    """Both marks, both sources, every copy of one photo (runs in a worker process)."""
    name, photo, seed, jpeg, psnr, fp_keys = job
    rng = np.random.default_rng(seed)
    found: dict = {}
    seconds: dict = {}
    psnrs: dict = {}
    for source, size in SOURCES.items():
        base = ImageOps.fit(photo, size, Image.LANCZOS)
        identifier = f"{int(rng.integers(0, 2**32)):08x}"
        for mark, version in MARKS.items():
            marked = watermark_tiled_embed.embed(base, identifier, watermark.DEFAULT_KEY, version=version)
            psnrs[(mark, source)] = psnr(base, marked)
            for copy, (px, make) in copies(jpeg).items():
                if version != 3 and copy not in AXIS:
                    continue  # the variants are measured for the current mark only (time)
                image = make(marked)
                start = time.perf_counter()
                result = watermark.detect(image)
                seconds.setdefault((mark, px), []).append(time.perf_counter() - start)
                found[(mark, source, copy)] = result.identifier == identifier
    positives, checks, start = 0, 0, time.perf_counter()
    for px in (320, 256, 200):
        unmarked = jpeg(short_side(photo, px), 70)
        for k in range(fp_keys):
            positives += int(watermark.detect(unmarked, key=f"fp-size-key-{seed}-{k}").found)
            checks += 1
    return {
        "name": name,
        "found": found,
        "seconds": seconds,
        "psnr": psnrs,
        "fp": (positives, checks, time.perf_counter() - start),
    }


def report(results: list[dict], jpeg) -> None:
    marks = list(MARKS)
    header = " | ".join(f"{mark} {source}" for source in SOURCES for mark in marks)
    print(f"\n### size axis ({len(results)} photos; JPEG q70 unless named)\n")
    print(f"| copy | {header} |\n|---|" + "---|" * (len(SOURCES) * len(marks)))
    for copy in copies(jpeg):
        cells = [
            f"{sum(r['found'][(mark, source, copy)] for r in results)}/{len(results)}"
            if (mark, source, copy) in results[0]["found"]
            else "-"
            for source in SOURCES
            for mark in marks
        ]
        print(f"| {copy} | " + " | ".join(cells) + " |")
    print("\n| mark | " + " | ".join(f"PSNR {s} median (min)" for s in SOURCES) + " |\n|---|---|---|")
    for mark in marks:
        cells = []
        for source in SOURCES:
            values = [r["psnr"][(mark, source)] for r in results]
            cells.append(f"{statistics.median(values):.1f} dB ({min(values):.1f})")
        print(f"| {mark} | " + " | ".join(cells) + " |")
    print(
        "\n| short side | " + " | ".join(f"{m} detect median / max (s)" for m in marks) + " |\n|---|---|---|"
    )
    for px in sorted({px for r in results for (_m, px) in r["seconds"]}, reverse=True):
        cells = []
        for mark in marks:
            values = [t for r in results for t in r["seconds"][(mark, px)]]
            cells.append(f"{statistics.median(values):.2f} / {max(values):.2f}")
        print(f"| {px} px | " + " | ".join(cells) + " |")
    positives, checks, seconds = (sum(r["fp"][i] for r in results) for i in range(3))
    print(
        f"\nfalse positives on small unmarked copies (320, 256, 200 px, q70): {positives} of {checks} "
        f"checks ({seconds / max(checks, 1):.3f} s per check)"
    )
