"""The C2PA manifest definition of a delivered headshot.

Only what the user chose to disclose enters it: no local paths, no user names, no EXIF
(the image is re-encoded from its pixels), prompts only on opt-in, the subject's photos
only as keyed commitments (signing/commitments.py), and the checks the headshot passed as
numbers and flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headshot import __version__
from headshot.signing import watermark
from headshot.signing.commitments import INSTANCE_PREFIX
from headshot.signing.config import SigningConfig
from headshot.signing.generation_info import GenerationInfo
from headshot.signing.xmp import TRAINED_ALGORITHMIC_MEDIA

TOOL = {"name": "headshot", "version": __version__}
GENERATION_LABEL = "org.headshot.generation"
CHECKS_LABEL = "org.headshot.checks"
SUBJECT_PHOTOS_LABEL = "org.headshot.subject-photos"
WATERMARK_LABEL = "org.headshot.watermark"
# Files signed before 2026-12 declared the mark as a soft binding; verify still reads it.
LEGACY_SOFT_BINDING_LABEL = "c2pa.soft-binding"
MIME_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}
_TRAINING_USES = ("cawg.ai_generative_training", "cawg.ai_training", "cawg.ai_inference", "cawg.data_mining")


def public_model_name(base_model: str) -> str:
    """A hub id stays as is; a local folder or file is reduced to its name (no local paths)."""
    path = Path(base_model).expanduser()
    if path.is_absolute() or base_model.startswith((".", "~")) or path.exists():
        return path.name
    return base_model


def generation_record(info: GenerationInfo, include_prompts: bool) -> dict[str, Any]:
    record = info.model_dump(
        exclude={"prompt", "negative_prompt", "subject_photos", "checks"}, exclude_none=True
    )
    record["base_model"] = public_model_name(info.base_model)
    if include_prompts:
        record.update(info.model_dump(include={"prompt", "negative_prompt"}, exclude_none=True))
    return record


def watermark_assertion(watermark_id: str, config: SigningConfig) -> dict[str, Any]:
    """What a reader needs to find the mark again: algorithm, version, identifier, key id."""
    return {
        "alg": watermark.ALGORITHM,
        "version": watermark.VERSION,
        "identifier": watermark_id,
        "key_id": watermark.key_id(config.watermark.key),
        "key_public": True,
        "detector": f"headshot {__version__} (headshot verify)",
    }


def builder_settings(config: SigningConfig, image_size: tuple[int, int] | None) -> dict[str, Any]:
    """c2pa Builder settings: the manifest's preview at `manifest_thumbnail` px on its long
    edge, never enlarged beyond `image_size` (a 64 px headshot keeps a 64 px preview), or none."""
    long_edge = config.manifest_thumbnail
    if image_size is not None:
        long_edge = min(long_edge, max(image_size))
    thumbnail = {"enabled": True, "long_edge": long_edge} if long_edge > 0 else {"enabled": False}
    return {"builder": {"thumbnail": thumbnail}}


def manifest_definition(
    title: str,
    mime_type: str,
    info: GenerationInfo | None,
    config: SigningConfig,
    watermark_id: str | None,
) -> dict[str, Any]:
    """The manifest JSON that c2pa's Builder signs. `title` is a file name, never a path."""
    actions: list[dict[str, Any]] = [
        {"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA, "softwareAgent": TOOL}
    ]
    assertions: list[dict[str, Any]] = []
    if watermark_id is not None:
        # Our own label, not c2pa.soft-binding: C2PA 2.2 (9.3.2, 18.10.4) allows only
        # algorithms from its registered soft-binding list there, and a c2pa.watermarked
        # action requires such a soft binding, so neither is used for an in-house mark.
        assertions.append({"label": WATERMARK_LABEL, "data": watermark_assertion(watermark_id, config)})
    assertions.insert(0, {"label": "c2pa.actions", "data": {"actions": actions}})
    assertions.append(
        {
            "label": "cawg.training-mining",
            "data": {"entries": {use: {"use": config.training_mining} for use in _TRAINING_USES}},
        }
    )
    definition: dict[str, Any] = {
        "claim_generator_info": [TOOL],
        "title": title,
        "format": mime_type,
        "assertions": assertions,
    }
    if info is not None:
        assertions.append(
            {"label": GENERATION_LABEL, "data": generation_record(info, config.include_prompts)}
        )
        if info.checks is not None:
            assertions.append({"label": CHECKS_LABEL, "data": info.checks.model_dump(mode="json")})
        photos = info.subject_photos
        if config.subject_photo_commitments and photos is not None and photos.commitments:
            # The salt is public (it makes two headshots' commitments unrelated); the secret
            # that makes them checkable is not in the manifest.
            assertions.append(
                {
                    "label": SUBJECT_PHOTOS_LABEL,
                    "data": {
                        "alg": photos.alg,
                        "version": photos.version,
                        "salt": photos.salt,
                        "key_check": photos.key_check,
                        "count": len(photos.commitments),
                    },
                }
            )
            definition["ingredients"] = [
                {
                    "title": f"subject photo {number}",
                    "relationship": "inputTo",
                    "instance_id": f"{INSTANCE_PREFIX}{value}",
                }
                for number, value in enumerate(photos.commitments, start=1)
            ]
    return definition
