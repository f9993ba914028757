"""`headshot batch`: the command line of the batch runner (Ray is imported only when it runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headshot.cli_common import app


@app.command("batch")
def batch_command(
    batch_file: Annotated[
        Path, typer.Argument(help="The batch YAML: subjects and shared settings (docs/batch.md).")
    ],
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster to join: auto, HOST:6379 or ray://HOST:10001 (default: a local Ray).",
        ),
    ] = None,
    outputs: Annotated[
        Path | None,
        typer.Option("--outputs", help="Root of every subject's folders (default: the batch file's)."),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option("--record", help="Where to write the batch record (default OUTPUTS/batch.json)."),
    ] = None,
) -> None:
    """Many subjects through prepare, finetune, generate (+sign) and audit, as Ray tasks.

    Each stage of each subject is a Ray task with the resources the batch file asks for, on a
    local Ray or the cluster at --address. A subject that fails stops alone (exit code 1);
    running the batch again skips everything finished and resumes the rest.
    """
    from rich.console import Console

    from headshot.batch.config import load_batch
    from headshot.batch.runner import run_batch

    batch = load_batch(batch_file, outputs)
    console = Console(stderr=True)
    result = run_batch(batch, source=str(batch_file), address=address, record_path=record, console=console)
    for entry in result.subjects:
        if entry.state == "failed":
            typer.echo(f"{entry.name}: failed at {entry.failed_stage}: {entry.reason}", err=True)
        else:
            typer.echo(f"{entry.name}: {entry.state}")
    typer.echo(f"record: {record or batch.outputs / 'batch.json'}")
    if result.failed:
        raise typer.Exit(1)
