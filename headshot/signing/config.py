"""Options of `sign`, `verify` and the signing done by `generate` (configs/signing.yaml)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_serializer, field_validator, model_validator

from headshot.config import StrictModel, load_config
from headshot.signing import watermark

# Where `headshot keys init` writes development credentials, and where signing looks for
# them when no certificate is configured.
DEFAULT_DEV_CREDENTIALS = Path("outputs/keys")


class WatermarkSettings(StrictModel):
    enabled: bool = True
    # Margin per payload bit: the carrier amplitude, in grey levels, that the folded tile
    # must reach for each bit; 0.13 keeps PSNR near 40 dB and survives the crops, borders,
    # rescaling and JPEG measured in docs/watermark.md.
    strength: float = Field(default=watermark.DEFAULT_STRENGTH, gt=0, le=2)
    # Seed of the carriers. Public on purpose: anyone may detect the disclosure.
    key: str = watermark.DEFAULT_KEY


class SigningConfig(StrictModel):
    """Credentials, manifest contents, watermark and output encoding of signed images."""

    # Production credentials: a PEM chain (signing certificate first, then intermediates,
    # not the root) and its private key, or a callback signer for a KMS/HSM.
    cert_chain: Path | None = None
    private_key: Path | None = None
    # A Python callable `sign(data: bytes) -> bytes` returning a raw signature for the
    # algorithm below (ES256: 64 bytes r||s), given as "package.module:function" in YAML
    # or as the callable itself from code. The private key never enters this process.
    signer_callback: str | Callable[[bytes], bytes] | None = None
    algorithm: Literal["es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519"] = "es256"
    tsa_url: str | None = None  # RFC 3161 time-stamp authority, optional
    # Used when cert_chain is not set: created on first use, never on a public trust list.
    dev_credentials: Path = DEFAULT_DEV_CREDENTIALS
    # Root certificates (PEM files) that `verify` trusts: Trusted instead of Valid.
    trust_anchors: list[Path] = Field(default_factory=list)

    # Manifest contents.
    include_prompts: bool = False  # prompts describe the person: opt in
    training_mining: Literal["notAllowed", "allowed", "constrained"] = "notAllowed"
    # The training photos as ingredients holding keyed commitments (HMAC under the
    # subject's secret), never the photos or their plain hashes.
    subject_photo_commitments: bool = True
    # The manifest repository (headshot/signing/store.py): a database URL
    # (postgresql+psycopg://user@host/db, sqlite:///path) or a SQLite file path. Default: the
    # file manifests.sqlite inside manifest_store, the folder that also holds entries of the
    # pre-database folder store (imported once, automatically).
    store: str | None = None
    manifest_store: Path = Path("outputs/manifest-store")
    # Long edge in pixels of the preview JPEG inside the C2PA manifest (viewers show a few
    # hundred pixels; never larger than the image itself); 0: no preview. c2pa's own default,
    # 1024 px, made the manifest 140 KB of a 230 KB 512 px headshot (docs/signing-size.md).
    manifest_thumbnail: int = Field(default=256, ge=0, le=1024)

    watermark: WatermarkSettings = Field(default_factory=WatermarkSettings)

    # Encoding when signing writes a new file whose format is not fixed by its name.
    output_format: Literal["jpg", "png", "webp"] = "jpg"
    quality: int = Field(default=92, ge=1, le=100)  # JPEG and WebP

    @field_serializer("signer_callback")
    def _callback_name(self, value: str | Callable[[bytes], bytes] | None) -> str | None:
        """Records stay JSON: a callable given from code is written as its import path."""
        if value is None or isinstance(value, str):
            return value
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        """Configs written before 2026-12 name the ingredients option `subject_photo_hashes`."""
        if isinstance(data, dict) and "subject_photo_hashes" in data:
            data = dict(data)
            data.setdefault("subject_photo_commitments", data.pop("subject_photo_hashes"))
        return data

    @field_validator("tsa_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value


def load_signing_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> SigningConfig:
    """Defaults < YAML file (configs/signing.yaml layout) < overrides (None means not given)."""
    return load_config(SigningConfig, path, overrides)
