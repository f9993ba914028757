"""The manifest repository a signing config names, ready to use: `sign`, `verify`, `generate`
and `headshot serve` open it here.

Opening it imports the config's old folder store once (store_legacy.py), which is why this
sits above both the repository (store.py) and that import rather than inside store.py.
"""

from __future__ import annotations

from pathlib import Path

from headshot.signing.store import ManifestStore, StoreLookup, store_url
from headshot.signing.store_legacy import import_folder_once
from headshot.signing.watermark_payload import key_id


def open_store(config) -> ManifestStore:
    """The repository a signing config names (`store:`), with its old folder imported once."""
    repository = ManifestStore(store_url(config.store, config.manifest_store))
    import_folder_once(repository, Path(config.manifest_store), config.watermark.key)
    return repository


def recover(config) -> int:
    return open_store(config).recover()


def lookup(config, identifier: str) -> StoreLookup:
    """What the repository knows of a watermark identifier read under the config's key."""
    repository = open_store(config)
    found = repository.find_by_binding(key_id(config.watermark.key), identifier, 1)
    if not found:
        return StoreLookup(found=False, identifier=identifier, source=repository.where)
    entry = found[0]
    return StoreLookup(
        found=True,
        identifier=identifier,
        entry=entry.manifest_id,
        summary=entry.summary,
        source=repository.where,
        manifest_bytes=entry.manifest,
    )
