"""Read any image back: C2PA validation state, AI disclosure (C2PA / XMP / watermark), signer.

Works on images signed by other C2PA tools too: nothing here assumes our own manifest
layout except the watermark declaration (org.headshot.watermark, or the c2pa.soft-binding of
files signed before 2026-12) and the local manifest store lookup.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import c2pa
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field, computed_field

from headshot.errors import HeadshotError
from headshot.signing import store, watermark
from headshot.signing.config import SigningConfig
from headshot.signing.manifest import CHECKS_LABEL, LEGACY_SOFT_BINDING_LABEL, WATERMARK_LABEL
from headshot.signing.repository import lookup
from headshot.signing.xmp import AI_SOURCE_TYPES, read_digital_source_type

# Absent: no C2PA manifest in the file. Remote: the file points to a manifest at a URL that
# was not fetched (or could not be): unknown, which is not the same as Invalid.
State = Literal["Trusted", "Valid", "Invalid", "Absent", "Remote"]
# Failure codes that only say "not on a trust list": the state (Valid) already says that.
_NOT_ERRORS = {"signingCredential.untrusted"}


class WatermarkReport(BaseModel):
    found: bool
    identifier: str | None = None
    algorithm: str | None = None  # which mark was read (the current one, or v1 of older files)
    score: float = 0.0
    matches_manifest: bool | None = None  # the manifest declares the same identifier


class Verification(BaseModel):
    file: str
    state: State
    ai_generated: bool
    disclosed_by: list[Literal["c2pa", "xmp", "watermark"]] = Field(default_factory=list)
    digital_source_type: str | None = None
    signer: str | None = None
    claim_generator: str | None = None
    manifest_label: str | None = None
    remote_manifest_url: str | None = None  # the URL a file points to for its manifest
    watermark: WatermarkReport
    manifest_store: store.StoreLookup | None = None
    # What the headshot passed before delivery (org.headshot.checks): likeness and audit.
    checks: dict[str, Any] | None = None
    image_readable: bool = True  # False: not an image, or its pixels could not be decoded
    require_ai: bool = False  # the option `passed` was decided under
    errors: list[str] = Field(default_factory=list)

    @computed_field
    @property
    def passed(self) -> bool:
        """Not Invalid and a readable image; with require_ai, also declared AI-generated.

        Valid without a trust anchor passes (being on a trust list is a separate question),
        and so do an unsigned photo and a manifest not fetched: nothing in them is broken.
        """
        if self.state == "Invalid" or not self.image_readable:
            return False
        return self.ai_generated or not self.require_ai


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


def reading_context(trust_anchors: list[Path], fetch_remote: bool = False) -> c2pa.Context:
    settings: dict[str, Any] = {"verify": {"verify_trust": True, "remote_manifest_fetch": fetch_remote}}
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


def _declared_watermark_ids(manifest: dict[str, Any]) -> set[str]:
    """Identifiers the manifest declares: our own assertion, or the soft binding of older files."""
    declared = {
        str(data["identifier"]) for data in _assertions(manifest, WATERMARK_LABEL) if "identifier" in data
    }
    legacy = {
        str(block.get("value"))
        for data in _assertions(manifest, LEGACY_SOFT_BINDING_LABEL)
        if str(data.get("alg", "")).startswith("org.headshot.watermark.")
        for block in data.get("blocks", [])
    }
    return declared | legacy


def _checks(manifest: dict[str, Any]) -> dict[str, Any] | None:
    found = _assertions(manifest, CHECKS_LABEL)
    return found[0] if found and isinstance(found[0], dict) else None


def _failures(results: dict[str, Any] | None) -> list[str]:
    failures = ((results or {}).get("activeManifest") or {}).get("failure") or []
    return [
        f"{item.get('code')}: {item.get('explanation')}"
        for item in failures
        if item.get("code") not in _NOT_ERRORS
    ]


class VerifyOptions(BaseModel):
    """What a reader asks of each file (the `headshot verify` options)."""

    # Fail a file that is not declared AI-generated. Off for readers of other people's
    # images (a camera photo with its own manifest is fine); on for generate's delivery
    # check and a studio's own checks of what it publishes.
    require_ai: bool = False
    # Fetch a manifest that the file only points to (a URL). Off: no network unless asked.
    fetch_remote: bool = False
    trust_anchors: list[Path] = Field(default_factory=list)


_REMOTE_URL = re.compile(r"https?://[^\s)]+")


def read_active_manifest(
    data: bytes, context: c2pa.Context
) -> tuple[State, dict[str, Any], list[str], str | None]:
    """Validation state, active manifest, errors, and the URL of a manifest stored remotely."""
    try:
        reader = c2pa.Reader.try_create(io.BytesIO(data), context=context)
        if reader is None:
            return "Absent", {}, [], None
        with reader:
            store_json = json.loads(reader.json())
            manifest = store_json.get("manifests", {}).get(store_json.get("active_manifest"), {})
            state = reader.get_validation_state() or "Invalid"
            remote = None if reader.is_embedded() else reader.get_remote_url()
            errors = []
            if state == "Invalid":
                errors = _failures(reader.get_validation_results()) or ["the manifest did not validate"]
    except c2pa.C2paError.NotSupported:
        return "Absent", {}, ["C2PA: this file type cannot carry a manifest"], None
    except c2pa.C2paError as exc:
        message = str(exc)
        if message.startswith("Remote:"):  # c2pa reports a manifest that only a URL points to
            url = _REMOTE_URL.search(message)
            fetched = (
                "not fetched" if "must fetch" in message else f"could not be fetched ({message[7:].strip()})"
            )
            return "Remote", {}, [f"remote manifest, {fetched}"], url.group() if url else None
        return "Invalid", {}, [f"C2PA manifest unreadable: {exc}"], None
    if state not in ("Trusted", "Valid", "Invalid"):
        state = "Invalid"
    return state, manifest, errors, remote


def read_stored_manifest(manifest: bytes, context: c2pa.Context) -> store.StoredFacts | None:
    """What a manifest kept in the repository says, read from its bytes alone (no asset).

    Its signature is checked; its hash of the original file cannot be (a stripped copy is
    not that file), so a data-hash mismatch is expected and not counted against it.
    """
    if not manifest:
        return None
    try:
        with c2pa.Reader("application/c2pa", io.BytesIO(manifest), context=context) as reader:
            store_json = json.loads(reader.json())
            results = reader.get_validation_results()
    except c2pa.C2paError:
        return store.StoredFacts(signature_valid=False)
    active = store_json.get("manifests", {}).get(store_json.get("active_manifest"), {})
    failures = [
        code
        for code in _failures(results)
        if not code.startswith(("assertion.dataHash.mismatch", "assertion.boxesHash.mismatch"))
    ]
    source_type = _source_type(active)
    return store.StoredFacts(
        signature_valid=not failures,
        manifest_label=active.get("label"),
        title=active.get("title"),
        signer=_signer(active),
        signed_at=(active.get("signature_info") or {}).get("time"),
        claim_generator=_claim_generator(active),
        digital_source_type=source_type,
        ai_generated=source_type in AI_SOURCE_TYPES,
        checks=_checks(active) if not failures else None,
    )


# How a watermark identifier is turned into what a repository knows: the local store
# (the config's) by default, a remote Soft Binding Resolution API with `verify --resolve`.
Resolver = Callable[[str], store.StoreLookup]


def local_resolver(config: SigningConfig, context: c2pa.Context) -> Resolver:
    def resolve(identifier: str) -> store.StoreLookup:
        found = lookup(config, identifier)
        if found.found and found.manifest_bytes:
            found.manifest = read_stored_manifest(found.manifest_bytes, context)
        return found

    return resolve


def verify_file(
    path: Path,
    config: SigningConfig | None = None,
    trust_anchors: list[Path] | None = None,
    options: VerifyOptions | None = None,
    resolver: Resolver | None = None,
) -> Verification:
    """Everything a viewer should know about one image's disclosure and signature."""
    path = Path(path)
    if not path.is_file():
        raise HeadshotError(f"{path}: file not found")
    return verify_bytes(path.read_bytes(), str(path), config, trust_anchors, options, resolver)


def verify_bytes(
    data: bytes,
    name: str,
    config: SigningConfig | None = None,
    trust_anchors: list[Path] | None = None,
    options: VerifyOptions | None = None,
    resolver: Resolver | None = None,
) -> Verification:
    """verify_file on bytes in memory (the server's uploads are never written to disk)."""
    config = config or SigningConfig()
    options = options or VerifyOptions()
    label = Path(name).name
    anchors = [*config.trust_anchors, *options.trust_anchors, *(trust_anchors or [])]
    context = reading_context(anchors, options.fetch_remote)
    state, manifest, errors, remote_url = read_active_manifest(data, context)

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
    except UnidentifiedImageError:
        errors.append(f"{label}: not an image (or a format headshot cannot read)")
        xmp_type, found = None, None
    except Image.DecompressionBombError as exc:  # a header claiming gigapixels, refused before decoding
        errors.append(f"{label}: not a readable image: {' '.join(str(exc).split())[:200]}")
        xmp_type, found = None, None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # what Pillow's decoders raise
        errors.append(f"{label}: truncated or corrupt image data ({exc})")
        xmp_type, found = None, None
    if xmp_type in AI_SOURCE_TYPES:
        disclosed.append("xmp")
        source_type = source_type or xmp_type
    lookup = None
    if found is not None and found.found:
        disclosed.append("watermark")
        bound = _declared_watermark_ids(manifest)
        marks = WatermarkReport(
            found=True,
            identifier=found.identifier,
            algorithm=found.algorithm,
            score=round(found.score, 2),
            matches_manifest=(found.identifier in bound) if bound else None,
        )
        lookup = (resolver or local_resolver(config, context))(found.identifier)
        if source_type is None and lookup.found and lookup.summary:
            source_type = lookup.summary.get("digital_source_type")
    elif found is not None:
        marks = WatermarkReport(found=False, score=round(found.score, 2))
    return Verification(
        file=name,
        state=state,
        ai_generated=bool(disclosed),
        disclosed_by=disclosed,
        digital_source_type=source_type,
        signer=_signer(manifest) if manifest else None,
        claim_generator=_claim_generator(manifest) if manifest else None,
        manifest_label=manifest.get("label") if manifest else None,
        remote_manifest_url=remote_url,
        watermark=marks,
        manifest_store=lookup,
        # Only a manifest whose signature holds vouches for its check results.
        checks=_checks(manifest) if manifest and state in ("Valid", "Trusted") else None,
        image_readable=found is not None,
        require_ai=options.require_ai,
        errors=errors,
    )
