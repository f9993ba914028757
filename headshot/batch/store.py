"""The one place the batch decides where signed headshots' manifests go, and passes it to generate.

All subjects sign into one store. On one machine that is the default local store under the
outputs root; on a cluster of several machines only a database server is safe (a file store
or an SQLite file on a network filesystem relies on file locks and process ids that do not
hold across machines), so anything else is refused before any work starts.

The store is the manifest repository (headshot/signing/store.py): a database URL is passed to
generate as its `store` option; a folder is the signing config's (or the default) one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headshot.errors import HeadshotError

SERVER_SCHEMES = ("postgresql://", "postgresql+psycopg://", "postgresql+psycopg2://", "postgres://")


def effective_store(setting: str | None, signing_config: Path | None, outputs: Path) -> str:
    """The store every subject signs into: the batch's setting, else the signing YAML's, else
    the default under OUTPUTS."""
    if setting:
        return setting
    if signing_config is not None:
        from headshot.signing.config import load_signing_config

        return str(load_signing_config(Path(signing_config)).manifest_store)
    return str(Path(outputs) / "manifest-store")


def is_server_url(store: str) -> bool:
    return store.startswith(SERVER_SCHEMES)


def check_store_for_cluster(store: str, hosts: int, source: str) -> None:
    """Refuse a local store when the nodes are on more than one machine."""
    if hosts > 1 and not is_server_url(store):
        raise HeadshotError(
            f"{source}: field 'manifest_store': the cluster spans {hosts} machines, and a local store "
            f"({store}) on a shared filesystem is not safe for writers on several machines (its locks "
            "and pending-entry checks only hold within one machine); give a PostgreSQL URL "
            "(postgresql://user@host/db)"
        )


def generate_options(store: str, signing_config: Path | None, outputs: Path) -> dict[str, Any]:
    """What generate's config gets so that its signing uses `store`."""
    if is_server_url(store):
        options: dict[str, Any] = {"store": store}
        if signing_config is not None:
            options["signing_config"] = str(signing_config)
        return options
    if signing_config is not None:
        from headshot.signing.config import load_signing_config

        configured = load_signing_config(Path(signing_config)).manifest_store
    else:
        configured = Path(outputs) / "manifest-store"
    if Path(store) != Path(configured):
        raise HeadshotError(
            f"manifest_store {store}: this build signs into the signing YAML's store ({configured}); "
            "set 'manifest_store' in the signing YAML named by 'signing_config' instead"
        )
    return {"signing_config": str(signing_config)} if signing_config is not None else {}
