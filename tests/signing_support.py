"""Fixtures shared by the signing tests: one set of development credentials per session."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from headshot.samples import grace_hopper
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
        subject_photo_sha256=["c" * 64, "d" * 64],
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
