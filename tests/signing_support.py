"""Fixtures shared by the signing tests: one set of development credentials per session."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from headshot.samples import grace_hopper
from headshot.signing.commitments import commit_photos
from headshot.signing.config import SigningConfig
from headshot.signing.credentials import CredentialPaths, create_dev_credentials
from headshot.signing.generation_info import GenerationInfo


@pytest.fixture(scope="session")
def dev_keys(tmp_path_factory) -> CredentialPaths:
    return create_dev_credentials(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def signing_config(dev_keys, tmp_path_factory) -> SigningConfig:
    return SigningConfig(
        cert_chain=dev_keys.cert_chain,
        private_key=dev_keys.private_key,
        manifest_store=tmp_path_factory.mktemp("manifest-store"),
    )


@pytest.fixture(scope="session")
def portrait() -> Image.Image:
    """The real public-domain portrait at a headshot-like square size."""
    image = grace_hopper()
    return image.crop((0, 44, 512, 556))


@pytest.fixture(scope="session")
def generation_info() -> GenerationInfo:
    return GenerationInfo(
        base_model="stabilityai/stable-diffusion-xl-base-1.0",
        base_model_sha256="a" * 64,
        lora_sha256="b" * 64,
        template="studio-grey",
        seed=7,
        family="sdxl",
        prompt="a photo of sks person, studio portrait",
        subject_photos=commit_photos(b"s" * 32, ["c" * 64, "d" * 64]),
    )


def reencode(path: Path, quality: int = 70, scale: float = 1.0) -> Image.Image:
    """What an upload pipeline does: decode, maybe resize, re-encode as JPEG without metadata."""
    with Image.open(path) as image:
        pixels = image.convert("RGB")
    if scale != 1.0:
        pixels = pixels.resize((round(pixels.width * scale), round(pixels.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    pixels.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


LEGACY_ALGORITHM = "org.headshot.watermark.dct-ss.v1"


def sign_the_old_way(image: Image.Image, path: Path, config: SigningConfig, identifier: str) -> Path:
    """A headshot as `headshot sign` made it before 2026-12: the v1 (whole-frame DCT) mark,
    declared with a c2pa.watermarked action and a c2pa.soft-binding naming our own algorithm,
    and filed in the manifest store under its identifier. Signed with c2pa-python directly.
    """
    import c2pa

    from headshot.signing.watermark_dct import embed
    from headshot.signing.xmp import TRAINED_ALGORITHMIC_MEDIA, save_options, xmp_packet

    tool = {"name": "headshot", "version": "0.1.0"}
    definition = {
        "claim_generator_info": [tool],
        "title": path.name,
        "format": "image/jpeg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": tool,
                        },
                        {
                            "action": "c2pa.watermarked",
                            "softwareAgent": tool,
                            "parameters": {
                                "description": f"invisible watermark {LEGACY_ALGORITHM}, id {identifier}"
                            },
                        },
                    ]
                },
            },
            {
                "label": "c2pa.soft-binding",
                "data": {"alg": LEGACY_ALGORITHM, "blocks": [{"scope": {}, "value": identifier}]},
            },
        ],
    }
    buffer = io.BytesIO()
    embed(image, identifier).save(buffer, "JPEG", quality=92, **save_options("JPEG", xmp_packet()))
    chain, key = config.cert_chain.read_bytes(), config.private_key.read_bytes()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    signed = io.BytesIO()
    with c2pa.Builder(definition) as builder:
        manifest_bytes = builder.sign(signer, "image/jpeg", io.BytesIO(buffer.getvalue()), signed)
    path.write_bytes(signed.getvalue())
    summary = {
        "watermark_id": identifier,
        "title": path.name,
        "digital_source_type": TRAINED_ALGORITHMIC_MEDIA,
    }
    # The folder store of before 2026-12: imported into the repository on its next use.
    folder = Path(config.manifest_store)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{identifier}.c2pa").write_bytes(manifest_bytes)
    (folder / f"{identifier}.json").write_text(json.dumps(summary))
    return path
