"""Robustness of the invisible watermark to what happens to a profile photo (docs/watermark.md).

One run measures, on the same 18 real photos and the same attacks: the current tiled mark
(v3), the whole-frame DCT mark (v1), and the `imwatermark` package's dwtDct and
dwtDctSvd (Stable Diffusion's watermark; 32-bit payload, no error detection of its own).

- Marked set: each photo at headshot size (1024x1024, centre crop) with a random identifier;
  for the square-crop attack also a portrait-format copy (832x1040).
- Attacks: seven changes of the frame (none, square crop of the portrait, 10% crop then
  400x400, a 7 px shift, 5% off one edge, a white border, a 60%-area crop at a random offset),
  each alone and followed by JPEG q90/q75/q60, a resize to 400 px, and 400 px + JPEG q75/q60;
  plus plain rescaling (0.3x, 0.5x, 2x) and a mirror.
- False positives: the photos at their own size and three attacked copies of each, under
  many keys (each key is an independent carrier set: a separate check).
- PSNR per photo; the worst case's difference image at 10x gain is written to
  docs/watermark-difference.png.
- The size axis (bench/watermark_sizes.py): copies down to 160 px of marked 512 and 1024 px
  headshots, v3 against v2, with their own false-positive checks.
Usage: python bench/bench_watermark.py [--fp-keys N] [--size-fp-keys N] [--workers N] [--quick]
       [--sizes-only | --no-sizes]
(imwatermark: in a separate environment, see requirements-bench.lock)
"""

from __future__ import annotations

import argparse
import io
import secrets
import statistics
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from headshot.samples import astronaut, grace_hopper
from headshot.signing import watermark_dct, watermark_tiled, watermark_tiled_embed
from headshot.signing.watermark import DEFAULT_KEY

PHOTO_NAMES = (
    "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "coins", "moon",
    "retina", "hubble_deep_field", "clock", "immunohistochemistry", "stereo_motorcycle", "cell", "page",
)  # fmt: skip
DOCS = Path(__file__).resolve().parent.parent / "docs"


def real_photos() -> dict[str, Image.Image]:
    """18 distinct real photos: the two packaged portraits and 16 of scikit-image's data photos."""
    import skimage.data as data

    photos = {"grace_hopper": grace_hopper(), "astronaut": astronaut()}
    for name in PHOTO_NAMES:
        array = getattr(data, name)()
        if isinstance(array, tuple):  # stereo_motorcycle: (left, right, disparity)
            array = array[0]
        photos[name] = Image.fromarray(array).convert("RGB")
    return photos


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def long_side(image: Image.Image, pixels: int) -> Image.Image:
    factor = pixels / max(image.size)
    return image.resize(
        (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.LANCZOS
    )


def scale(image: Image.Image, factor: float) -> Image.Image:
    return image.resize(
        (max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.LANCZOS
    )


def crop(image: Image.Image, left: float, top: float, right: float, bottom: float) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * left), round(h * top), round(w * (1 - right)), round(h * (1 - bottom))))


def area_crop(image: Image.Image, seed: int, kept: float = 0.6) -> Image.Image:
    side = kept**0.5
    rng = np.random.default_rng(seed)
    left, top = rng.uniform(0, 1 - side, 2)
    return crop(image, left, top, 1 - side - left, 1 - side - top)


# Each frame change takes (square headshot, portrait copy, seed).
FRAMES = {
    "none": lambda sq, pt, seed: sq,
    "square crop of a portrait": lambda sq, pt, seed: pt.crop((0, 60, pt.width, 60 + pt.width)),
    "10% crop, 400x400": lambda sq, pt, seed: crop(sq, 0.05, 0.05, 0.05, 0.05).resize(
        (400, 400), Image.LANCZOS
    ),
    "7 px shift": lambda sq, pt, seed: sq.crop((7, 7, sq.width, sq.height)),
    "5% off one edge": lambda sq, pt, seed: crop(sq, 0, 0, 0.05, 0),
    "white border 5%": lambda sq, pt, seed: ImageOps.expand(sq, round(0.05 * sq.width), "white"),
    "60% of the area, random offset": lambda sq, pt, seed: area_crop(sq, seed),
}
AFTER = {
    "": lambda im: im,
    " + JPEG q90": lambda im: jpeg(im, 90),
    " + JPEG q75": lambda im: jpeg(im, 75),
    " + JPEG q60": lambda im: jpeg(im, 60),
    " + 400 px": lambda im: long_side(im, 400),
    " + 400 px + JPEG q75": lambda im: jpeg(long_side(im, 400), 75),
    " + 400 px + JPEG q60": lambda im: jpeg(long_side(im, 400), 60),
}
EXTRA = {
    "rescale 0.3x": lambda sq, pt, seed: scale(sq, 0.3),
    "rescale 0.5x + JPEG q70": lambda sq, pt, seed: jpeg(scale(sq, 0.5), 70),
    "rescale 2x": lambda sq, pt, seed: scale(sq, 2.0),
    "mirror + JPEG q75": lambda sq, pt, seed: jpeg(ImageOps.mirror(sq), 75),
}


def attacks() -> dict:
    table = {
        f"{frame}{after}": (apply, post) for frame, apply in FRAMES.items() for after, post in AFTER.items()
    }
    table.update({name: (apply, AFTER[""]) for name, apply in EXTRA.items()})
    return table


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255**2 / max((x**2).mean(), 1e-12)))


class Imwatermark:
    """imwatermark with a 32-bit payload; 'recovered' means all 32 bits right (no CRC)."""

    def __init__(self, method: str):
        import cv2  # noqa: F401
        from imwatermark import WatermarkDecoder, WatermarkEncoder

        self.method, self.encoder_class, self.decoder_class = method, WatermarkEncoder, WatermarkDecoder

    def embed(self, image: Image.Image, identifier: str) -> Image.Image:
        import cv2

        encoder = self.encoder_class()
        encoder.set_watermark("bits", [int(b) for b in f"{int(identifier, 16):032b}"])
        bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
        return Image.fromarray(cv2.cvtColor(encoder.encode(bgr, self.method), cv2.COLOR_BGR2RGB))

    def recovered(self, image: Image.Image, identifier: str) -> bool:
        import cv2

        if min(image.size) < 16:
            return False
        try:
            bits = self.decoder_class("bits", 32).decode(
                cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), self.method
            )
        except Exception:
            return False
        return "".join(str(int(b)) for b in bits) == f"{int(identifier, 16):032b}"


class Ours:
    def __init__(self, module, embedder=None):
        self.module, self.embedder = module, embedder or module

    def embed(self, image: Image.Image, identifier: str) -> Image.Image:
        return self.embedder.embed(image, identifier, key=DEFAULT_KEY)

    def recovered(self, image: Image.Image, identifier: str) -> bool:
        return self.module.detect(image, key=DEFAULT_KEY).identifier == identifier


def _marks(with_imwatermark: bool) -> dict:
    marks = {
        "v3 tiled (current)": Ours(watermark_tiled, watermark_tiled_embed),
        "v1 whole-frame DCT": Ours(watermark_dct),
    }
    if with_imwatermark:
        marks["imwatermark dwtDct"] = Imwatermark("dwtDct")
        marks["imwatermark dwtDctSvd"] = Imwatermark("dwtDctSvd")
    return marks


def _measure_photo(job: tuple) -> dict:
    """Every mark and attack on one photo (runs in a worker process)."""
    name, photo, seed, with_imwatermark, attack_names = job
    square = ImageOps.fit(photo, (1024, 1024), Image.LANCZOS)
    portrait = ImageOps.fit(photo, (832, 1040), Image.LANCZOS)
    table = attacks()
    rows: dict = {}
    for mark_name, mark in _marks(with_imwatermark).items():
        identifier = secrets.token_hex(4)
        start = time.perf_counter()
        marked_square = mark.embed(square, identifier)
        embed_s = time.perf_counter() - start
        marked_portrait = mark.embed(portrait, identifier)
        detect_s, found = [], {}
        for attack in attack_names:
            apply, post = table[attack]
            attacked = post(apply(marked_square, marked_portrait, seed))
            start = time.perf_counter()
            found[attack] = mark.recovered(attacked, identifier)
            detect_s.append(time.perf_counter() - start)
        rows[mark_name] = {
            "psnr": psnr(square, marked_square),
            "embed_s": embed_s,
            "detect_s": statistics.median(detect_s),
            "detect_max_s": max(detect_s),
            "found": found,
        }
        if mark_name.startswith("v3"):
            rows[mark_name]["pair"] = (square, marked_square)
    return {"name": name, "rows": rows}


def _false_positive_job(job: tuple) -> tuple[int, int, float]:
    """Detections on one unmarked image under `keys` keys: (false positives, checks, seconds)."""
    image, keys, first = job
    positives, start = 0, time.perf_counter()
    for k in range(first, first + keys):
        positives += int(watermark_tiled.detect(image, key=f"fp-key-{k}").found)
    return positives, keys, time.perf_counter() - start


def unmarked_variants(photos: dict[str, Image.Image]) -> list[Image.Image]:
    """Each photo at its own size (at most 1024) and three attacked copies."""
    variants = []
    for photo in photos.values():
        base = long_side(photo, 1024) if max(photo.size) > 1024 else photo
        variants += [
            base,
            jpeg(base, 70),
            jpeg(crop(base, 0.05, 0.05, 0.05, 0.05).resize((400, 400), Image.LANCZOS), 75),
            jpeg(ImageOps.expand(base, round(0.05 * base.width), "white"), 75),
        ]
    return variants


FACE = (300, 180, 700, 580)  # Grace Hopper's face in the 1024 px headshot


def difference_picture(
    square: Image.Image, marked: Image.Image, path: Path, zoom: tuple | None = None
) -> None:
    """Original | marked | difference x10 (grey = no change), each 512 px; with `zoom`, that
    box of the 1024 px image (a face) enlarged instead, so that the skin can be seen."""
    diff = np.asarray(marked, dtype=np.float64) - np.asarray(square, dtype=np.float64)
    gained = Image.fromarray(np.clip(128 + 10 * diff, 0, 255).astype(np.uint8))
    if zoom is not None:
        square, marked, gained = (im.crop(zoom) for im in (square, marked, gained))
    panels = [im.resize((512, 512), Image.LANCZOS) for im in (square, marked)] + [
        gained.resize((512, 512), Image.BOX)
    ]
    sheet = Image.new("RGB", (3 * 512 + 16, 512), "white")
    for i, panel in enumerate(panels):
        sheet.paste(panel, (i * (512 + 8), 0))
    sheet.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fp-keys", type=int, default=140, help="keys per unmarked image (72 images)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="3 photos, a few attacks, 2 keys (a smoke run)")
    parser.add_argument("--no-imwatermark", action="store_true")
    parser.add_argument("--size-fp-keys", type=int, default=10, help="keys per small unmarked copy (54)")
    parser.add_argument("--sizes-only", action="store_true", help="only the size axis (watermark_sizes.py)")
    parser.add_argument("--no-sizes", action="store_true", help="without the size axis")
    args = parser.parse_args()
    photos = real_photos()
    if args.quick:
        photos = dict(list(photos.items())[:3])
    if not args.no_sizes:
        _size_axis(photos, args)
    if args.sizes_only:
        return
    attack_names = list(attacks())
    if args.quick:
        attack_names = ["none", "10% crop, 400x400 + JPEG q75", "white border 5% + JPEG q75", "rescale 0.3x"]
        args.fp_keys = 2
    with_imwatermark = not args.no_imwatermark
    if with_imwatermark:
        try:
            import imwatermark  # noqa: F401
        except ImportError:
            print("imwatermark not installed: comparing v2 and v1 only (see the usage line)")
            with_imwatermark = False
    print(
        f"{len(photos)} real photos: {', '.join(f'{k} {v.size[0]}x{v.size[1]}' for k, v in photos.items())}"
    )
    jobs = [
        (name, photo, seed, with_imwatermark, attack_names)
        for seed, (name, photo) in enumerate(photos.items())
    ]
    started = time.perf_counter()
    with Pool(args.workers) as pool:
        results = pool.map(_measure_photo, jobs)
        variants = unmarked_variants(photos)
        fp_jobs = [(image, args.fp_keys, i * args.fp_keys) for i, image in enumerate(variants)]
        fp = pool.map(_false_positive_job, fp_jobs)
    marks = list(results[0]["rows"])
    print(f"\nmeasured in {time.perf_counter() - started:.0f} s with {args.workers} worker processes")
    print("\n| attack | " + " | ".join(marks) + " |\n|---|" + "---|" * len(marks))
    for attack in attack_names:
        cells = [f"{sum(r['rows'][m]['found'][attack] for r in results)}/{len(results)}" for m in marks]
        print(f"| {attack} | " + " | ".join(cells) + " |")
    print("\n| mark | PSNR median | PSNR min | embed median (s) | detect median (s) | detect max (s) |")
    print("|---|---|---|---|---|---|")
    for m in marks:
        values = [r["rows"][m] for r in results]
        psnrs = [v["psnr"] for v in values]
        times = (
            statistics.median(v["embed_s"] for v in values),
            statistics.median(v["detect_s"] for v in values),
            max(v["detect_max_s"] for v in values),
        )
        print(
            f"| {m} | {statistics.median(psnrs):.1f} dB | {min(psnrs):.1f} dB | "
            + " | ".join(f"{t:.2f}" for t in times)
            + " |"
        )
    current = marks[0]
    missed = [(r["name"], a) for r in results for a in attack_names if not r["rows"][current]["found"][a]]
    print(f"\n{current}: missed {len(missed)} of {len(results) * len(attack_names)}: {missed}")
    positives, checks, seconds = (sum(x[i] for x in fp) for i in range(3))
    print(
        f"false positives of {current}: {positives} of {checks} checks "
        f"({len(variants)} unmarked images x {args.fp_keys} keys; {seconds / checks:.3f} s per check)"
    )
    worst = min(results, key=lambda r: r["rows"][current]["psnr"])
    square, marked = worst["rows"][current]["pair"]
    path = DOCS / "watermark-difference.png"
    if not args.quick:
        difference_picture(square, marked, path)
        print(
            f"worst PSNR: {worst['name']} {worst['rows'][current]['psnr']:.1f} dB; difference x10 -> {path}"
        )
        face = next(r for r in results if r["name"] == "grace_hopper")["rows"][current]["pair"]
        difference_picture(*face, DOCS / "watermark-difference-face.png", zoom=FACE)


def _size_axis(photos: dict[str, Image.Image], args) -> None:
    import watermark_sizes  # bench/ is on the path when this script runs

    started = time.perf_counter()
    jobs = [
        (name, photo, seed, jpeg, psnr, 2 if args.quick else args.size_fp_keys)
        for seed, (name, photo) in enumerate(photos.items())
    ]
    with Pool(args.workers) as pool:
        results = pool.map(watermark_sizes.measure_photo, jobs)
    print(f"size axis measured in {time.perf_counter() - started:.0f} s with {args.workers} worker processes")
    watermark_sizes.report(results, jpeg)


if __name__ == "__main__":
    main()
