"""The `serve` and `store import` commands: parse arguments, call headshot.service / headshot.signing.

Nothing heavy is imported at module level (fastapi, uvicorn, SQLAlchemy load inside the
commands), so `headshot --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headshot.cli_common import ConfigOption, app

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Manifest repository: a database URL (postgresql+psycopg://..., sqlite:///...) or a "
        "SQLite file (default: the signing config's).",
    ),
]


@app.command("serve")
def serve_command(
    store: StoreOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.", min=0, max=65535)] = 8000,
    config: ConfigOption = None,
) -> None:
    """Serve the manifest repository: the C2PA Soft Binding Resolution API at /v1 and a page at /.

    Read-only: recipients upload an image (kept in memory only) or a watermark binding and get
    back whether it carries Content Credentials, whether they declare it AI-generated, and,
    for a stripped copy, the manifest its watermark resolves to. docs/service.md says how to
    run it behind a reverse proxy with TLS.
    """
    import uvicorn

    from headshot.service.app import create_app
    from headshot.service.settings import ServiceSettings
    from headshot.signing.config import load_signing_config

    settings = ServiceSettings(signing=load_signing_config(config, {"store": store}))
    application = create_app(settings)
    typer.echo(f"serving {application.title} on http://{host}:{port} (API at /v1, page at /)")
    uvicorn.run(
        application,
        host=host,
        port=port,
        limit_concurrency=64,  # connections beyond this get 503 at once
        timeout_keep_alive=5,
        server_header=False,
        log_level="warning",
        access_log=False,  # request lines are not logged at all
    )


store_app = typer.Typer(help="The manifest repository (database) that signing writes.", no_args_is_help=True)
app.add_typer(store_app, name="store")


@store_app.command("import")
def store_import_command(
    folder: Annotated[Path, typer.Argument(help="A manifest-store folder of <id>.json + <id>.c2pa entries.")],
    store: StoreOption = None,
    config: ConfigOption = None,
) -> None:
    """Import a folder store (before 2026-12) into the repository. Idempotent: run it twice, get one copy.

    The signing config's own manifest_store folder is imported automatically on first use;
    this command imports any other folder, e.g. into a PostgreSQL repository.
    """
    from headshot.errors import HeadshotError
    from headshot.signing.config import load_signing_config
    from headshot.signing.store import ManifestStore, store_url
    from headshot.signing.store_legacy import import_folder

    signing = load_signing_config(config, {"store": store})
    if not folder.is_dir():
        raise HeadshotError(f"{folder}: not a folder")
    repository = ManifestStore(store_url(signing.store, signing.manifest_store))
    imported, skipped = import_folder(repository, folder, signing.watermark.key)
    typer.echo(f"{folder}: {imported} entries imported into {repository.where}, {skipped} skipped")
