"""The manifest repository: what `sign` signed, found again by its soft binding or manifest id.

The one module that knows the database. Signing reserves a watermark identifier (unique per
key across every signer writing to the database), saves the entry once the manifest exists,
and commits it once the image is delivered (or aborts it); `verify` and `headshot serve`
find entries by binding (watermark identifier) or fetch them by manifest id.

SQLAlchemy 2 over SQLite by default (an embedded file: <manifest_store>/manifests.sqlite)
or any URL, e.g. postgresql+psycopg://user@host/db for signers and servers on several
machines. Every query is parameterised; each step is one short transaction.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Engine, create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from headshot.errors import HeadshotError
from headshot.records import sha256_file
from headshot.signing.store_schema import SCHEMA_VERSION, manifests, metadata, schema_version
from headshot.storage import fault_point, process_alive

DEFAULT_DATABASE = "manifests.sqlite"  # inside the signing config's manifest_store folder


class StoredFacts(BaseModel):
    """What the stored manifest itself says (read by verify from its bytes, no asset needed)."""

    signature_valid: bool  # its claim signature holds (the original file's hash is not checked)
    manifest_label: str | None = None
    title: str | None = None
    signer: str | None = None
    signed_at: str | None = None  # the signature's time stamp, when it has one
    claim_generator: str | None = None
    digital_source_type: str | None = None
    ai_generated: bool = False
    checks: dict[str, Any] | None = None  # org.headshot.checks, only when the signature holds


class StoreLookup(BaseModel):
    found: bool
    identifier: str
    entry: str | None = None  # the entry's manifest id (urn:c2pa:...), when it has one
    summary: dict[str, Any] | None = None  # what signing filed beside it (local store only)
    source: str | None = None  # which repository answered: a database, or a server's URL
    manifest: StoredFacts | None = None
    manifest_bytes: bytes | None = Field(default=None, exclude=True)


@dataclass(frozen=True)
class Entry:
    """One delivered manifest, as the API and verify read it."""

    manifest_id: str | None
    alg: str
    key_id: str
    identifier: str
    manifest: bytes
    sha256: str | None
    created_at: dt.datetime
    summary: dict[str, Any]


def store_url(store: str | None, manifest_store: Path) -> str:
    """A database URL from the `store` setting: a URL, a SQLite file path, or the default file."""
    if store and "://" in store:
        for plain in ("postgresql://", "postgres://"):  # the installed driver is psycopg 3
            if store.startswith(plain):
                return "postgresql+psycopg://" + store[len(plain) :]
        return store
    path = Path(store) if store else Path(manifest_store) / DEFAULT_DATABASE
    return f"sqlite:///{path.expanduser().resolve()}"


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for a signer
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _engine(url: str, where: str) -> Engine:
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            try:
                parsed = make_url(url)
                if parsed.get_backend_name() == "sqlite":
                    # No pool: each use opens the file, so a store made read-only (or moved)
                    # is seen at once; opening a SQLite file costs well under a millisecond.
                    engine = create_engine(
                        url, poolclass=NullPool, connect_args={"check_same_thread": False, "timeout": 30}
                    )
                    event.listen(engine, "connect", _sqlite_pragmas)
                else:
                    engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
            except (ArgumentError, ImportError, ValueError) as exc:
                raise HeadshotError(f"{where}: not a usable database URL ({exc})") from None
            _ENGINES[url] = engine
        return _ENGINES[url]


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return " ".join(text.split())[:200]


class ManifestStore:
    """The repository behind a URL. Cheap to construct; the engine is shared per URL."""

    def __init__(self, url: str):
        self.url = url
        parsed = make_url(url) if "://" in url else None
        if parsed is not None and parsed.get_backend_name() == "sqlite":
            self.where = parsed.database or url
        else:
            self.where = parsed.render_as_string(hide_password=True) if parsed else url
        self.sqlite_file = Path(self.where) if url.startswith("sqlite:///") else None
        self._ready = False

    @property
    def engine(self) -> Engine:
        return _engine(self.url, self.where)

    def exists(self) -> bool:
        """False only for a SQLite file that was never created (nothing signed into it)."""
        return self.sqlite_file is None or self.sqlite_file.is_file()

    def _fail(self, exc: BaseException, doing: str) -> HeadshotError:
        return HeadshotError(f"{self.where}: cannot {doing} the manifest store ({_short(exc)})")

    def ensure_schema(self) -> None:
        """Create the tables on first use; refuse a database of a newer schema version."""
        if self._ready:
            return
        try:
            if self.sqlite_file is not None:
                self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
            metadata.create_all(self.engine)
            with self.engine.begin() as connection:
                found = connection.execute(select(schema_version.c.version)).scalars().all()
                if not found:
                    connection.execute(insert(schema_version).values(version=SCHEMA_VERSION))
        except IntegrityError:
            found = [SCHEMA_VERSION]  # another process created it at the same moment
        except (SQLAlchemyError, OSError) as exc:
            raise self._fail(exc, "write to") from None
        if max(found or [SCHEMA_VERSION]) > SCHEMA_VERSION:
            raise HeadshotError(
                f"{self.where}: manifest store schema version {max(found)} is newer than this "
                f"headshot's ({SCHEMA_VERSION}); upgrade headshot"
            )
        self._ready = True

    # -- writing (signing) --------------------------------------------------------------

    def reserve_identifier(self, key_id: str, alg: str, final: Path) -> str:
        """A random 32-bit identifier no signer has used with this key, held as a pending row."""
        self.ensure_schema()
        while True:
            identifier = secrets.token_hex(4)
            row = {
                "key_id": key_id,
                "identifier": identifier,
                "alg": alg,
                "created_at": dt.datetime.now(dt.timezone.utc),
                "state": "pending",
                "pending_host": socket.gethostname(),
                "pending_pid": os.getpid(),
                "pending_file": str(Path(final).resolve()),
            }
            fault_point("store:reserve")
            try:
                with self.engine.begin() as connection:
                    connection.execute(insert(manifests).values(**row))
                return identifier
            except IntegrityError:
                continue  # taken by another signer: draw again
            except SQLAlchemyError as exc:
                raise self._fail(exc, "write to") from None

    def save_entry(
        self, key_id: str, identifier: str, manifest_id: str | None, manifest: bytes, summary: dict
    ) -> None:
        """The entry's contents, in one transaction; it stays pending until commit_entry."""
        values = {
            "manifest_id": manifest_id,
            "manifest": manifest,
            "sha256": summary.get("sha256"),
            "summary": summary,
        }
        fault_point("store:save")
        self._update(key_id, identifier, values)

    def commit_entry(self, key_id: str, identifier: str) -> None:
        """The image is delivered: the entry counts from now on."""
        self._update(
            key_id,
            identifier,
            {"state": "delivered", "pending_host": None, "pending_pid": None, "pending_file": None},
        )

    def _update(self, key_id: str, identifier: str, values: dict) -> None:
        """Set `values` on one entry, in one transaction."""
        try:
            with self.engine.begin() as connection:
                connection.execute(update(manifests).where(*self._key(key_id, identifier)).values(**values))
        except SQLAlchemyError as exc:
            raise self._fail(exc, "write to") from None

    def abort_entry(self, key_id: str, identifier: str) -> None:
        """Remove an entry whose image was not delivered (best effort: the store may be read-only)."""
        try:
            with self.engine.begin() as connection:
                connection.execute(delete(manifests).where(*self._key(key_id, identifier)))
        except SQLAlchemyError:
            pass

    def recover(self) -> int:
        """Settle pending rows of this machine's stopped runs: keep an entry whose file was
        delivered with its hash, remove the others. Returns how many were removed."""
        if not self.exists():
            return 0
        self.ensure_schema()
        query = select(manifests.c.key_id, manifests.c.identifier, manifests.c.sha256).where(
            manifests.c.state == "pending", manifests.c.pending_host == socket.gethostname()
        )
        removed = 0
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    query.add_columns(manifests.c.pending_pid, manifests.c.pending_file)
                )
                pending = rows.all()
            for key_id, identifier, digest, pid, file in pending:
                if process_alive(int(pid or 0)):
                    continue  # another run is signing right now
                target = Path(file or "")
                try:
                    delivered = bool(digest) and target.is_file() and sha256_file(target) == digest
                except OSError:
                    delivered = False
                if delivered:
                    self.commit_entry(key_id, identifier)
                else:
                    self.abort_entry(key_id, identifier)
                    removed += 1
        except SQLAlchemyError as exc:
            raise self._fail(exc, "write to") from None
        return removed

    # -- reading (verify, the server) ----------------------------------------------------

    def find_by_binding(self, key_id: str, identifier: str, max_results: int = 10) -> list[Entry]:
        query = (
            select(manifests)
            .where(*self._key(key_id, identifier), manifests.c.state == "delivered")
            .order_by(manifests.c.created_at)
            .limit(max_results)
        )
        return self._entries(query)

    def fetch(self, manifest_id: str) -> Entry | None:
        query = select(manifests).where(
            manifests.c.manifest_id == manifest_id, manifests.c.state == "delivered"
        )
        found = self._entries(query)
        return found[0] if found else None

    def count(self) -> int:
        """Delivered entries (the server's health line)."""
        if not self.exists():
            return 0
        self.ensure_schema()
        query = select(func.count()).select_from(manifests).where(manifests.c.state == "delivered")
        try:
            with self.engine.connect() as connection:
                return int(connection.execute(query).scalar() or 0)
        except SQLAlchemyError as exc:
            raise self._fail(exc, "read") from None

    def _entries(self, query) -> list[Entry]:
        if not self.exists():
            return []
        self.ensure_schema()
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).mappings().all()
        except SQLAlchemyError as exc:
            raise self._fail(exc, "read") from None
        return [
            Entry(
                manifest_id=row["manifest_id"],
                alg=row["alg"],
                key_id=row["key_id"],
                identifier=row["identifier"],
                manifest=bytes(row["manifest"] or b""),
                sha256=row["sha256"],
                created_at=row["created_at"],
                summary=row["summary"] if isinstance(row["summary"], dict) else {},
            )
            for row in rows
        ]

    @staticmethod
    def _key(key_id: str, identifier: str) -> tuple:
        return (manifests.c.key_id == key_id, manifests.c.identifier == identifier)
