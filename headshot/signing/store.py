"""The local manifest store: what `sign` signed, found again by watermark identifier.

`verify` on a copy whose metadata was stripped reads the watermark identifier and looks
it up here: <store>/<identifier>.json (a summary) and <identifier>.c2pa (the manifest
store bytes c2pa produced, readable by any C2PA tool as a sidecar).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from headshot.bounded_io import read_json_object
from headshot.errors import HeadshotError
from headshot.records import atomic_write_bytes, atomic_write_json, sha256_file
from headshot.storage import process_alive, remove_temp_files


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
        summary = read_json_object(entry)
    except HeadshotError:
        return StoreLookup(found=False, identifier=identifier, entry=entry.name)
    return StoreLookup(found=True, identifier=identifier, entry=entry.name, summary=summary)


# An entry is written before its image. Until the image is in place under its final name,
# a `.pending-<identifier>` marker beside the entry says which file it belongs to; the next
# run (`recover`) keeps the entry if that file is there with the entry's hash, and removes
# it otherwise, so the store never keeps entries of images that were never delivered.


def _marker(store: Path, identifier: str) -> Path:
    return Path(store) / f".pending-{identifier}"


def begin_entry(store: Path, identifier: str, final: Path) -> None:
    atomic_write_json(_marker(store, identifier), {"pid": os.getpid(), "file": str(Path(final).resolve())})


def commit_entry(store: Path, identifier: str) -> None:
    _marker(store, identifier).unlink(missing_ok=True)


def abort_entry(store: Path, identifier: str) -> None:
    """Remove an entry whose image was not delivered (best effort: the store may be read-only)."""
    for path in (
        Path(store) / f"{identifier}.json",
        Path(store) / f"{identifier}.c2pa",
        _marker(store, identifier),
    ):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


def recover(store: Path) -> int:
    """Settle the entries of runs that stopped; returns how many entries were removed."""
    store = Path(store)
    if not store.is_dir():
        return 0
    remove_temp_files(store, recursive=False)
    removed = 0
    for marker in sorted(store.glob(".pending-*")):
        identifier = marker.name[len(".pending-") :]
        try:
            pending = read_json_object(marker)
            if process_alive(int(pending.get("pid", 0))):
                continue  # another run is signing right now
            summary = read_json_object(store / f"{identifier}.json")
            target = Path(str(pending.get("file", "")))
            delivered = target.is_file() and sha256_file(target) == summary.get("sha256")
        except (HeadshotError, OSError, ValueError):
            delivered = False
        if delivered:
            commit_entry(store, identifier)
        else:
            abort_entry(store, identifier)
            removed += 1
    return removed
