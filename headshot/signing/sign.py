"""Sign an image: watermark, IPTC XMP, C2PA manifest, then one atomic write.

The destination is either the fully signed file or absent: everything happens in memory,
the manifest repository entry is reserved and written first, and the image last, through a temporary file in
the same folder renamed into place (removed again if anything fails).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from dataclasses import dataclass
from pathlib import Path

import c2pa
from PIL import Image

from headshot import __version__
from headshot.analysis.image_io import read_photo
from headshot.errors import HeadshotError
from headshot.records import atomic_write_bytes, sha256_bytes
from headshot.signing import store, watermark
from headshot.signing.config import SigningConfig
from headshot.signing.credentials import Credentials, resolve_credentials
from headshot.signing.generation_info import GenerationInfo
from headshot.signing.manifest import (
    MIME_TYPES,
    PIL_FORMATS,
    builder_settings,
    generation_record,
    manifest_definition,
)
from headshot.signing.repository import open_store
from headshot.signing.watermark_payload import key_id
from headshot.signing.xmp import TRAINED_ALGORITHMIC_MEDIA, save_options, xmp_packet
from headshot.storage import final_path

_ALGORITHMS = {
    "es256": c2pa.C2paSigningAlg.ES256,
    "es384": c2pa.C2paSigningAlg.ES384,
    "es512": c2pa.C2paSigningAlg.ES512,
    "ps256": c2pa.C2paSigningAlg.PS256,
    "ps384": c2pa.C2paSigningAlg.PS384,
    "ps512": c2pa.C2paSigningAlg.PS512,
    "ed25519": c2pa.C2paSigningAlg.ED25519,
}
_LABEL = re.compile(rb"urn:c2pa:[0-9a-fA-F-]{36}")


@dataclass(frozen=True)
class SignedImage:
    path: Path
    sha256: str
    mime_type: str
    manifest_label: str | None
    watermark_id: str | None
    signer: str
    store_entry: Path | None  # the manifest store summary, when a watermark id keys it


def make_signer(credentials: Credentials, config: SigningConfig) -> c2pa.Signer:
    algorithm = _ALGORITHMS[config.algorithm]
    try:
        if credentials.callback is not None:
            return c2pa.Signer.from_callback(
                credentials.callback, algorithm, credentials.chain_pem.decode("ascii"), config.tsa_url
            )
        info = c2pa.C2paSignerInfo(
            algorithm, credentials.chain_pem, credentials.private_key_pem, config.tsa_url
        )
        return c2pa.Signer.from_info(info)
    except c2pa.C2paError as exc:
        raise HeadshotError(f"{credentials.source}: cannot make a C2PA signer: {exc}") from None


def encode_with_xmp(image: Image.Image, suffix: str, config: SigningConfig) -> bytes:
    pil_format = PIL_FORMATS[suffix]
    options = save_options(pil_format, xmp_packet(TRAINED_ALGORITHMIC_MEDIA, f"headshot {__version__}"))
    if pil_format in ("JPEG", "WEBP"):
        options["quality"] = config.quality
    buffer = io.BytesIO()
    image.save(buffer, format=pil_format, **options)
    return buffer.getvalue()


def c2pa_sign(
    definition: dict,
    mime_type: str,
    asset: bytes,
    credentials: Credentials,
    config: SigningConfig,
    image_size: tuple[int, int] | None = None,
) -> tuple[bytes, bytes]:
    signer = make_signer(credentials, config)
    context = c2pa.Context(c2pa.Settings.from_dict(builder_settings(config, image_size)))
    try:
        with c2pa.Builder(definition, context=context) as builder:
            signed = io.BytesIO()
            manifest_bytes = builder.sign(signer, mime_type, io.BytesIO(asset), signed)
    except c2pa.C2paError as exc:
        raise HeadshotError(f"{credentials.source}: C2PA signing failed: {exc}") from None
    finally:
        signer.close()
    return signed.getvalue(), manifest_bytes


def _check_destination(destination: Path) -> str:
    suffix = destination.suffix.lower()
    if suffix not in MIME_TYPES:
        raise HeadshotError(f"{destination}: cannot sign this format; use a .jpg, .png or .webp name")
    return suffix


def sign_image(
    image: Image.Image, destination: Path, info: GenerationInfo | None, config: SigningConfig
) -> SignedImage:
    """Watermark, declare (XMP + C2PA) and sign `image`, writing `destination` atomically."""
    destination = Path(destination)
    suffix = _check_destination(destination)
    credentials = resolve_credentials(config)
    if not config.watermark.enabled:
        return _sign(image.convert("RGB"), destination, suffix, info, config, credentials, None)
    # The identifier is reserved in the repository first (unique per key across every signer
    # writing to it); the entry stays pending until its image is in place under its final
    # name. Built in a staging folder (generate's headshots/), it stays pending until the
    # folder is swapped in, and the store's recovery then keeps or drops it.
    repository = open_store(config)
    key = key_id(config.watermark.key)
    identifier = repository.reserve_identifier(key, watermark.ALGORITHM, final_path(destination))
    try:
        pixels = watermark.embed(
            image.convert("RGB"), identifier, key=config.watermark.key, strength=config.watermark.strength
        )
        result = _sign(pixels, destination, suffix, info, config, credentials, (repository, identifier))
    except BaseException:
        repository.abort_entry(key, identifier)  # no image, so no entry
        raise
    if final_path(destination) == destination:
        repository.commit_entry(key, identifier)
    return result


def _sign(
    pixels: Image.Image,
    destination: Path,
    suffix: str,
    info: GenerationInfo | None,
    config: SigningConfig,
    credentials: Credentials,
    reserved: tuple[store.ManifestStore, str] | None,
) -> SignedImage:
    mime_type = MIME_TYPES[suffix]
    watermark_id = reserved[1] if reserved else None
    definition = manifest_definition(destination.name, mime_type, info, config, watermark_id)
    signed, manifest_bytes = c2pa_sign(
        definition, mime_type, encode_with_xmp(pixels, suffix, config), credentials, config, pixels.size
    )
    label = _LABEL.search(manifest_bytes)
    manifest_label = label.group().decode() if label else None
    digest = sha256_bytes(signed)
    entry = None
    if reserved is not None:
        repository, identifier = reserved
        summary = {
            "watermark_id": identifier,
            "watermark_algorithm": watermark.ALGORITHM,
            "manifest_label": manifest_label,
            "title": destination.name,
            "format": mime_type,
            "sha256": digest,
            "signed_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "claim_generator": f"headshot {__version__}",
            "digital_source_type": TRAINED_ALGORITHMIC_MEDIA,
            "signer": credentials.signer_name,
            "training_mining": config.training_mining,
            "generation": generation_record(info, config.include_prompts) if info else None,
        }
        repository.save_entry(
            key_id(config.watermark.key), identifier, manifest_label, manifest_bytes, summary
        )
        entry = f"{repository.where}#{manifest_label or identifier}"
    try:
        atomic_write_bytes(destination, signed)
    except OSError as exc:
        raise HeadshotError(f"{destination}: cannot write the signed image ({exc.strerror or exc})") from None
    return SignedImage(
        destination, digest, mime_type, manifest_label, watermark_id, credentials.signer_name, entry
    )


def sign_file(
    source: Path, destination: Path, info: GenerationInfo | None, config: SigningConfig
) -> SignedImage:
    """`headshot sign`: re-encode `source` from its pixels (no EXIF survives) and sign it."""
    source, destination = Path(source), Path(destination)
    _check_destination(destination)
    if source.resolve() == destination.resolve():
        raise HeadshotError(f"{destination}: would overwrite the source image; choose another name")
    if not source.is_file():
        raise HeadshotError(f"{source}: image not found")
    # The shared reader applies EXIF orientation before the metadata is dropped, converts
    # CMYK/16-bit/alpha to RGB and refuses decompression bombs.
    return sign_image(read_photo(source), destination, info, config)
