"""Import the folder store of before 2026-12 (<identifier>.json + .c2pa) into the repository.

Runs by itself when a signing config's `manifest_store` folder holds entries the database
has not seen (their count and newest mtime are remembered), and on demand with `headshot store import`.
Idempotent: an identifier already in the repository is skipped, so importing twice, or
from two machines at once, adds nothing. Entries still marked pending, and unreadable or
hostile summaries, are skipped, never trusted.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from headshot.bounded_io import read_json_object
from headshot.errors import HeadshotError
from headshot.signing import watermark
from headshot.signing.store import ManifestStore
from headshot.signing.store_schema import legacy_imports, manifests
from headshot.signing.watermark_payload import key_id

_ENTRY = re.compile(r"^[0-9a-f]{8}\.json$")
_LABEL = re.compile(rb"urn:c2pa:[0-9a-fA-F-]{36}")


def _entries(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if _ENTRY.match(p.name) and p.is_file())


def _row(path: Path, key: str) -> dict | None:
    identifier = path.stem
    if (path.parent / f".pending-{identifier}").exists():
        return None  # its image may never have been delivered
    try:
        summary = read_json_object(path)
        sidecar = path.with_suffix(".c2pa")
        manifest = sidecar.read_bytes() if sidecar.is_file() else b""
    except (HeadshotError, OSError):
        return None
    label = summary.get("manifest_label")
    if not isinstance(label, str) or not label.startswith("urn:c2pa:"):
        found = _LABEL.search(manifest)
        label = found.group().decode() if found else None
    try:
        created = dt.datetime.fromisoformat(str(summary.get("signed_at")))
    except ValueError:
        created = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    digest = summary.get("sha256")
    return {
        "key_id": key_id(key),
        "identifier": identifier,
        # Entries written before 2026-12 carry the v1 mark (watermark_dct).
        "alg": str(summary.get("watermark_algorithm") or watermark.LEGACY[0].ALGORITHM),
        "manifest_id": label,
        "manifest": manifest,
        "sha256": digest if isinstance(digest, str) else None,
        "summary": summary,
        "created_at": created if created.tzinfo else created.replace(tzinfo=dt.timezone.utc),
        "state": "delivered",
    }


def import_folder(repository: ManifestStore, folder: Path, key: str) -> tuple[int, int]:
    """(imported, skipped) entries of a folder store, each in its own transaction."""
    repository.ensure_schema()
    imported = skipped = 0
    for path in _entries(Path(folder)):
        row = _row(path, key)
        if row is None:
            skipped += 1
            continue
        try:
            with repository.engine.begin() as connection:
                connection.execute(insert(manifests).values(**row))
            imported += 1
        except IntegrityError:
            skipped += 1  # already there (imported before, or the same manifest id)
        except SQLAlchemyError as exc:
            raise repository._fail(exc, "write to") from None
    return imported, skipped


def import_folder_once(repository: ManifestStore, folder: Path, key: str) -> int:
    """Import `folder` if its entries changed since their last import; returns how many entries came in."""
    folder = Path(folder)
    entries = _entries(folder)
    if not entries:
        return 0
    # Not the folder's mtime: the SQLite file beside the entries changes that.
    name = str(folder.resolve())
    stamp = f"{len(entries)}:{max(p.stat().st_mtime_ns for p in entries)}"
    repository.ensure_schema()
    try:
        with repository.engine.connect() as connection:
            seen = connection.execute(
                select(legacy_imports.c.mtime_ns).where(legacy_imports.c.folder == name)
            ).scalar()
    except SQLAlchemyError as exc:
        raise repository._fail(exc, "read") from None
    if seen == stamp:
        return 0
    imported, skipped = import_folder(repository, folder, key)
    try:
        with repository.engine.begin() as connection:
            connection.execute(legacy_imports.delete().where(legacy_imports.c.folder == name))
            connection.execute(
                insert(legacy_imports).values(folder=name, mtime_ns=stamp, entries=imported + skipped)
            )
    except SQLAlchemyError:
        pass  # only the memo: the next open imports (idempotently) again
    return imported
