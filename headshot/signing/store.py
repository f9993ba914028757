"""The local manifest store: what `sign` signed, found again by watermark identifier.

`verify` on a copy whose metadata was stripped reads the watermark identifier and looks
it up here: <store>/<identifier>.json (a summary) and <identifier>.c2pa (the manifest
store bytes c2pa produced, readable by any C2PA tool as a sidecar).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from headshot.records import atomic_write_bytes, atomic_write_json


class StoreLookup(BaseModel):
    found: bool
    identifier: str
    entry: str | None = None  # the summary file's name inside the store
    summary: dict[str, Any] | None = None


def unused_identifier(store: Path) -> str:
    """A random 32-bit watermark identifier that no entry in the store uses yet."""
    while True:
        identifier = secrets.token_hex(4)
        if not (Path(store) / f"{identifier}.json").exists():
            return identifier


def save_entry(store: Path, identifier: str, summary: dict[str, Any], manifest_bytes: bytes) -> Path:
    entry = Path(store) / f"{identifier}.json"
    if manifest_bytes:
        atomic_write_bytes(Path(store) / f"{identifier}.c2pa", manifest_bytes)
    atomic_write_json(entry, summary)
    return entry


def lookup(store: Path, identifier: str) -> StoreLookup:
    entry = Path(store) / f"{identifier}.json"
    if not entry.is_file():
        return StoreLookup(found=False, identifier=identifier)
    try:
        summary = json.loads(entry.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return StoreLookup(found=False, identifier=identifier, entry=entry.name)
    return StoreLookup(found=True, identifier=identifier, entry=entry.name, summary=summary)
