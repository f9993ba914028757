"""The manifest repository's tables and their version (SQLAlchemy Core, any SQL database).

One row per signed image: the C2PA manifest identifier (the active manifest's label), the
manifest store bytes, the soft binding (watermark algorithm, key id, identifier), the
signed file's hash and a JSON summary for `verify`. A row is `pending` from the moment its
identifier is reserved until its image is delivered; only `delivered` rows are ever found.

The schema is versioned by a plain one-row table (no migration tool: one version so far).
A database written by a newer headshot is refused instead of being misread.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

SCHEMA_VERSION = 1

metadata = MetaData()

manifests = Table(
    "headshot_manifests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    # The soft binding: unique per watermark key across every signer writing here.
    Column("key_id", String(16), nullable=False),
    Column("identifier", String(8), nullable=False),
    Column("alg", String(64), nullable=False),
    # urn:c2pa:<uuid>; NULL only while pending, or for an imported entry that never had one.
    Column("manifest_id", String(80), unique=True),
    Column("manifest", LargeBinary),  # the manifest store bytes (application/c2pa)
    Column("sha256", String(64)),  # of the delivered file
    Column("summary", JSON),  # what `verify` prints from the store
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),  # "pending" | "delivered"
    # Who is writing a pending row and which file it waits for (recover() settles it).
    Column("pending_host", String(255)),
    Column("pending_pid", Integer),
    Column("pending_file", Text),
    UniqueConstraint("key_id", "identifier", name="uq_headshot_manifests_binding"),
)

schema_version = Table(
    "headshot_schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
)

# Folders of the pre-database store already imported (path and the folder's mtime then).
legacy_imports = Table(
    "headshot_legacy_imports",
    metadata,
    Column("folder", String(1024), primary_key=True),
    Column("mtime_ns", String(32), nullable=False),
    Column("entries", Integer, nullable=False),
)
