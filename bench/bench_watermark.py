"""Robustness of the invisible watermark, measured on real photos (docs/watermark.md).

Marks every test photo with a random identifier, attacks it (JPEG quality 70, 0.5x resize,
both, JPEG 50, 0.75x resize) and reports bit error rates and detection rates; runs the
detector over the unmarked photos under many keys to count false positives; reports PSNR.
Usage: python bench/bench_watermark.py [--fp-keys N] [--compare-imwatermark]
"""

from __future__ import annotations

import argparse
import io
import secrets
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from headshot.samples import astronaut, grace_hopper
from headshot.signing import watermark


def real_photos() -> dict[str, Image.Image]:
    import skimage.data as data

    photos = {"grace_hopper": grace_hopper(), "astronaut": astronaut()}
    for name in (
        "coffee",
        "chelsea",
        "rocket",
        "camera",
        "brick",
        "grass",
        "gravel",
        "coins",
        "moon",
        "page",
        "text",
        "retina",
        "hubble_deep_field",
        "clock",
    ):
        try:
            array = getattr(data, name)()
        except Exception:
            continue
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        photos[name] = Image.fromarray(array).convert("RGB")
    # Generated headshots are 1024x1024: the subject at that size too.
    photos["grace_hopper_1024"] = grace_hopper().resize((1024, 1024), Image.LANCZOS)
    photos["astronaut_1024"] = astronaut().resize((1024, 1024), Image.LANCZOS)
    return photos


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def scale(image: Image.Image, factor: float) -> Image.Image:
    w, h = image.size
    return image.resize((max(1, round(w * factor)), max(1, round(h * factor))), Image.LANCZOS)


ATTACKS = {
    "none (PNG)": lambda im: im,
    "JPEG q90": lambda im: jpeg(im, 90),
    "JPEG q70": lambda im: jpeg(im, 70),
    "JPEG q50": lambda im: jpeg(im, 50),
    "resize 0.5x": lambda im: scale(im, 0.5),
    "resize 0.5x + JPEG q70": lambda im: jpeg(scale(im, 0.5), 70),
    "resize 0.75x + JPEG q80": lambda im: jpeg(scale(im, 0.75), 80),
    "resize 0.25x": lambda im: scale(im, 0.25),
    "brightness +10%, JPEG q80": lambda im: jpeg(ImageEnhance.Brightness(im).enhance(1.1), 80),
    "crop 5% off each side": lambda im: im.crop(
        (im.width // 20, im.height // 20, im.width - im.width // 20, im.height - im.height // 20)
    ),
    "mirror": ImageOps.mirror,
}


# The attacks the design promises to survive; the others are measured to show the limits.
REQUIRED = ("none (PNG)", "JPEG q90", "JPEG q70", "resize 0.5x", "resize 0.5x + JPEG q70")


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return float(10 * np.log10(255**2 / max((x**2).mean(), 1e-12)))


def compare_imwatermark(photos: dict[str, Image.Image]) -> None:
    """The invisible-watermark package (Stable Diffusion's) on the same photos and attacks."""
    import cv2
    from imwatermark import WatermarkDecoder, WatermarkEncoder

    rng = np.random.default_rng(0)
    for method in ("dwtDct", "dwtDctSvd"):
        totals = {name: [0, 0, 0] for name in ATTACKS}
        psnrs = []
        for photo in photos.values():
            bits = [int(b) for b in rng.integers(0, 2, 32)]
            encoder = WatermarkEncoder()
            encoder.set_watermark("bits", bits)
            bgr = cv2.cvtColor(np.asarray(photo), cv2.COLOR_RGB2BGR)
            marked = Image.fromarray(cv2.cvtColor(encoder.encode(bgr, method), cv2.COLOR_BGR2RGB))
            psnrs.append(psnr(photo, marked))
            for attack, apply in ATTACKS.items():
                attacked = np.asarray(apply(marked))
                try:
                    decoded = WatermarkDecoder("bits", 32).decode(
                        cv2.cvtColor(attacked, cv2.COLOR_RGB2BGR), method
                    )
                    errors = int(sum(int(a) != b for a, b in zip(decoded, bits)))
                except Exception:
                    errors = 32
                totals[attack][0] += errors
                totals[attack][1] += int(errors == 0)
                totals[attack][2] += 1
        print(f"\nimwatermark {method} (32 bits, no error detection): PSNR median {np.median(psnrs):.1f} dB")
        print("| attack | bit error rate | all bits right |\n|---|---|---|")
        for attack, (errors, exact, trials) in totals.items():
            print(f"| {attack} | {errors / (trials * 32):.4f} | {exact}/{trials} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--fp-keys", type=int, default=200, help="keys per unmarked photo for false positives"
    )
    parser.add_argument("--strength", type=float, default=watermark.DEFAULT_STRENGTH)
    parser.add_argument("--compare-imwatermark", action="store_true", help="also measure imwatermark")
    args = parser.parse_args()
    photos = real_photos()
    if args.compare_imwatermark:
        compare_imwatermark(photos)
    print(
        f"{len(photos)} real photos: {', '.join(f'{k} {v.size[0]}x{v.size[1]}' for k, v in photos.items())}"
    )
    totals = {name: [0, 0, 0] for name in ATTACKS}  # bit errors, detections, trials
    psnrs, embed_ms, detect_ms, scores_marked = [], [], [], []
    for name, photo in photos.items():
        for _trial in range(2):
            identifier = secrets.token_hex(4)
            start = time.perf_counter()
            marked = watermark.embed(photo, identifier, strength=args.strength)
            embed_ms.append((time.perf_counter() - start) * 1000)
            psnrs.append(psnr(photo, marked))
            for attack, apply in ATTACKS.items():
                attacked = apply(marked)
                start = time.perf_counter()
                result = watermark.detect(attacked)
                detect_ms.append((time.perf_counter() - start) * 1000)
                errors = watermark.bit_errors(attacked, identifier)
                totals[attack][0] += errors
                totals[attack][1] += int(result.found and result.identifier == identifier)
                totals[attack][2] += 1
                if not (result.found and result.identifier == identifier) and attack in REQUIRED:
                    print(f"  missed: {name} {photo.size} / {attack} ({errors} bit errors)")
                if attack == "none (PNG)":
                    scores_marked.append(result.score)
                if result.found and result.identifier != identifier:
                    print(f"  WRONG identifier on {name} / {attack}")
    print(
        f"\nstrength {args.strength}; PSNR of marked vs original: median {np.median(psnrs):.1f} dB, "
        f"min {np.min(psnrs):.1f} dB"
    )
    print(f"embed median {np.median(embed_ms):.0f} ms, detect median {np.median(detect_ms):.0f} ms")
    print(f"score on marked photos: min {np.min(scores_marked):.1f}, median {np.median(scores_marked):.1f}")
    print("\n| attack | bit error rate | identifier recovered |\n|---|---|---|")
    for attack, (errors, found, trials) in totals.items():
        print(f"| {attack} | {errors / (trials * watermark.N_BITS):.4f} | {found}/{trials} |")
    # False positives: unmarked photos (and their JPEG/resized copies) under many keys.
    false_positives, trials, scores = 0, 0, []
    for photo in photos.values():
        for variant in (photo, jpeg(photo, 70), scale(photo, 0.5)):
            for k in range(args.fp_keys):
                result = watermark.detect(variant, key=f"fp-key-{k}")
                trials += 1
                scores.append(result.score)
                false_positives += int(result.found)
    if not trials:
        return
    print(
        f"\nfalse positives on unmarked photos: {false_positives}/{trials} "
        f"(score median {np.median(scores):.2f}, max {np.max(scores):.2f}; "
        f"decoder may flip 2 of the {watermark.CHASE_BITS} weakest bits)"
    )


if __name__ == "__main__":
    main()
