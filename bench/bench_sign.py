"""Sign + watermark + XMP of a 1024x1024 JPEG versus a bare c2pa-python sign of the same file.

Both run in the same process, interleaved, on the same real photo (the packaged Grace Hopper
portrait at 1024x1024), writing a signed file to disk. headshot signs with what generate
puts into a delivered headshot's manifest: the generation record, the check results and
keyed commitments to 8 training photos. Prints medians, the ratio (goal: at most 2x) and
where headshot's time goes.
Usage: python bench/bench_sign.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import c2pa
from PIL import Image

from headshot.samples import grace_hopper
from headshot.signing import watermark
from headshot.signing.api import SigningConfig, create_dev_credentials, sign_file
from headshot.signing.commitments import commit_photos
from headshot.signing.credentials import resolve_credentials
from headshot.signing.generation_info import AuditCheck, CheckResults, GenerationInfo, LikenessCheck
from headshot.signing.manifest import manifest_definition
from headshot.signing.sign import c2pa_sign, encode_with_xmp

BARE_MANIFEST = {
    "claim_generator_info": [{"name": "bare", "version": "1"}],
    "assertions": [
        {
            "label": "c2pa.actions",
            "data": {
                "actions": [
                    {
                        "action": "c2pa.created",
                        "digitalSourceType": "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
                    }
                ]
            },
        }
    ],
}


def bare_sign(source: Path, destination: Path, chain: bytes, key: bytes) -> None:
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    with c2pa.Builder(BARE_MANIFEST) as builder:
        builder.sign_file(source, destination, signer)
    signer.close()


def delivered_info() -> GenerationInfo:
    """What generate gives sign for one delivered headshot."""
    checks = CheckResults(
        metrics_version=1,
        likeness=LikenessCheck(relative_distance=0.83, threshold=1.5, same_person=True),
        audit=AuditCheck(
            status="ok",
            flags=[],
            z={f"metric_{i}": 0.5 for i in range(12)},
            artifact_score=0.4,
            policy="fallback",
        ),
    )
    photos = commit_photos(b"k" * 32, [f"{i:064x}" for i in range(8)])
    return GenerationInfo(
        base_model="stabilityai/stable-diffusion-xl-base-1.0",
        base_model_sha256="a" * 64,
        lora_sha256="b" * 64,
        template="studio-grey",
        seed=3,
        family="sdxl",
        subject_photos=photos,
        checks=checks,
    )


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        keys = create_dev_credentials(root / "keys")
        config = SigningConfig(
            cert_chain=keys.cert_chain, private_key=keys.private_key, manifest_store=root / "store"
        )
        source = root / "portrait.jpg"
        grace_hopper().resize((1024, 1024), Image.LANCZOS).save(source, "JPEG", quality=92)
        chain, key = keys.cert_chain.read_bytes(), keys.private_key.read_bytes()
        # Warm-up: first calls load the native library and caches.
        bare_sign(source, root / "bare.jpg", chain, key)
        info = delivered_info()
        sign_file(source, root / "ours.jpg", info, config)
        ours, bare = [], []
        for _ in range(args.runs):
            bare.append(timed(bare_sign, source, root / "bare.jpg", chain, key))
            ours.append(timed(sign_file, source, root / "ours.jpg", info, config))
        # Where headshot's time goes (same work, step by step).
        image = Image.open(source).convert("RGB")
        credentials = resolve_credentials(config)
        steps = {"decode": [], "watermark": [], "encode + XMP": [], "c2pa sign": [], "credentials": []}
        for _ in range(args.runs):
            steps["decode"].append(timed(lambda: Image.open(source).convert("RGB")))
            steps["credentials"].append(timed(resolve_credentials, config))
            start = time.perf_counter()
            marked = watermark.embed(image, "12345678")
            steps["watermark"].append((time.perf_counter() - start) * 1000)
            start = time.perf_counter()
            encoded = encode_with_xmp(marked, ".jpg", config)
            steps["encode + XMP"].append((time.perf_counter() - start) * 1000)
            definition = manifest_definition("ours.jpg", "image/jpeg", info, config, "12345678")
            steps["c2pa sign"].append(
                timed(c2pa_sign, definition, "image/jpeg", encoded, credentials, config)
            )
        sizes = (
            source.stat().st_size,
            (root / "bare.jpg").stat().st_size,
            (root / "ours.jpg").stat().st_size,
        )
    ours_ms, bare_ms = statistics.median(ours), statistics.median(bare)
    print(f"1024x1024 JPEG, {args.runs} runs each, interleaved")
    print(f"bare c2pa-python sign_file:                 median {bare_ms:7.1f} ms")
    print(f"headshot sign_file (watermark+XMP+C2PA):    median {ours_ms:7.1f} ms")
    print(f"ratio headshot / bare: {ours_ms / bare_ms:.2f}x (goal <= 2x)")
    print(
        "headshot steps (median ms): "
        + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in steps.items())
    )
    print(
        f"file sizes: source {sizes[0] // 1024} KiB, "
        f"bare-signed {sizes[1] // 1024} KiB, ours {sizes[2] // 1024} KiB"
    )


if __name__ == "__main__":
    main()
