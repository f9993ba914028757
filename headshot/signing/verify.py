"""Read any image back: C2PA validation state, AI disclosure (C2PA / XMP / watermark), signer.

Works on images signed by other C2PA tools too: nothing here assumes our own manifest
layout except the optional soft-binding comparison and the local manifest store lookup.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Literal

import c2pa
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field, computed_field

from headshot.errors import HeadshotError
from headshot.signing import store, watermark
from headshot.signing.config import SigningConfig
from headshot.signing.manifest import SOFT_BINDING_LABEL
from headshot.signing.xmp import AI_SOURCE_TYPES, read_digital_source_type

State = Literal["Trusted", "Valid", "Invalid", "Absent"]
# Failure codes that only say "not on a trust list": the state (Valid) already says that.
_NOT_ERRORS = {"signingCredential.untrusted"}


class WatermarkReport(BaseModel):
    found: bool
    identifier: str | None = None
    score: float = 0.0
    matches_manifest: bool | None = None  # the manifest's soft binding names the same id


class Verification(BaseModel):
    file: str
    state: State  # Absent: no C2PA manifest in the file
    ai_generated: bool
    disclosed_by: list[Literal["c2pa", "xmp", "watermark"]] = Field(default_factory=list)
    digital_source_type: str | None = None
    signer: str | None = None
    claim_generator: str | None = None
    manifest_label: str | None = None
    watermark: WatermarkReport
    manifest_store: store.StoreLookup | None = None
    errors: list[str] = Field(default_factory=list)

    @computed_field
    @property
    def passed(self) -> bool:
        """What `headshot verify` requires: not Invalid, and declared AI-generated."""
        return self.state != "Invalid" and self.ai_generated


def read_trust_anchors(paths: list[Path]) -> str:
    pems = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise HeadshotError(f"{path}: trust anchor file not found")
        text = path.read_text(encoding="ascii", errors="replace")
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise HeadshotError(f"{path}: not a PEM certificate file (trust anchors)")
        pems.append(text.strip() + "\n")
    return "".join(pems)


def reading_context(trust_anchors: list[Path]) -> c2pa.Context:
    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    anchors = read_trust_anchors(trust_anchors)
    if anchors:
        settings["trust"] = {"user_anchors": anchors}
    return c2pa.Context.from_dict(settings)


def _signer(manifest: dict[str, Any]) -> str | None:
    info = manifest.get("signature_info") or {}
    name = info.get("common_name") or info.get("issuer")
    if name and info.get("issuer") and info.get("issuer") != name:
        return f"{name} (issued by {info['issuer']})"
    return name


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    generators = manifest.get("claim_generator_info") or []
    if generators:
        first = generators[0]
        return " ".join(str(part) for part in (first.get("name"), first.get("version")) if part)
    return manifest.get("claim_generator")


def _assertions(manifest: dict[str, Any], *labels: str) -> list[dict[str, Any]]:
    return [a.get("data") or {} for a in manifest.get("assertions", []) if a.get("label") in labels]


def _source_type(manifest: dict[str, Any]) -> str | None:
    """The AI digital source type of the manifest's actions, else the first one given."""
    declared = [
        action.get("digitalSourceType")
        for data in _assertions(manifest, "c2pa.actions", "c2pa.actions.v2")
        for action in data.get("actions", [])
        if action.get("digitalSourceType")
    ]
    ai = [value for value in declared if value in AI_SOURCE_TYPES]
    return (ai or declared or [None])[0]


def _soft_binding_ids(manifest: dict[str, Any]) -> set[str]:
    return {
        str(block.get("value"))
        for data in _assertions(manifest, SOFT_BINDING_LABEL)
        if data.get("alg") == watermark.ALGORITHM
        for block in data.get("blocks", [])
    }


def _failures(results: dict[str, Any] | None) -> list[str]:
    failures = ((results or {}).get("activeManifest") or {}).get("failure") or []
    return [
        f"{item.get('code')}: {item.get('explanation')}"
        for item in failures
        if item.get("code") not in _NOT_ERRORS
    ]


def verify_file(
    path: Path, config: SigningConfig | None = None, trust_anchors: list[Path] | None = None
) -> Verification:
    """Everything a viewer should know about one image's disclosure and signature."""
    config = config or SigningConfig()
    path = Path(path)
    if not path.is_file():
        raise HeadshotError(f"{path}: file not found")
    data = path.read_bytes()
    errors: list[str] = []
    state: State = "Absent"
    manifest: dict[str, Any] = {}
    try:
        context = reading_context([*config.trust_anchors, *(trust_anchors or [])])
        reader = c2pa.Reader.try_create(io.BytesIO(data), context=context)
        if reader is not None:
            with reader:
                store_json = json.loads(reader.json())
                manifest = store_json.get("manifests", {}).get(store_json.get("active_manifest"), {})
                state = reader.get_validation_state() or "Invalid"
                if state == "Invalid":
                    errors += _failures(reader.get_validation_results()) or ["the manifest did not validate"]
    except c2pa.C2paError.NotSupported:
        errors.append("C2PA: this file type cannot carry a manifest")
    except c2pa.C2paError as exc:
        state = "Invalid"
        errors.append(f"C2PA manifest unreadable: {exc}")
    if state not in ("Trusted", "Valid", "Invalid", "Absent"):
        state = "Invalid"

    disclosed: list[str] = []
    source_type = _source_type(manifest) if manifest else None
    if source_type in AI_SOURCE_TYPES:
        disclosed.append("c2pa")
    marks = WatermarkReport(found=False)
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            xmp_type = read_digital_source_type(image)
            found = watermark.detect(image, key=config.watermark.key)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError, SyntaxError) as exc:
        # DecompressionBombError: a header claiming gigapixels is refused before decoding.
        errors.append(f"not a readable image: {' '.join(str(exc).split())[:200]}")
        xmp_type, found = None, None
    if xmp_type in AI_SOURCE_TYPES:
        disclosed.append("xmp")
        source_type = source_type or xmp_type
    lookup = None
    if found is not None and found.found:
        disclosed.append("watermark")
        bound = _soft_binding_ids(manifest)
        marks = WatermarkReport(
            found=True,
            identifier=found.identifier,
            score=round(found.score, 2),
            matches_manifest=(found.identifier in bound) if bound else None,
        )
        lookup = store.lookup(config.manifest_store, found.identifier)
        if source_type is None and lookup.found and lookup.summary:
            source_type = lookup.summary.get("digital_source_type")
    elif found is not None:
        marks = WatermarkReport(found=False, score=round(found.score, 2))
    return Verification(
        file=str(path),
        state=state,
        ai_generated=bool(disclosed),
        disclosed_by=disclosed,
        digital_source_type=source_type,
        signer=_signer(manifest) if manifest else None,
        claim_generator=_claim_generator(manifest) if manifest else None,
        manifest_label=manifest.get("label") if manifest else None,
        watermark=marks,
        manifest_store=lookup,
        errors=errors,
    )
