"""The `tiny-model` and `demo` commands: the project on its own tiny models, no GPU, no downloads.

Registered on the app by headshot/cli.py; heavy libraries are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headshot.cli_common import app
from headshot.config import DEMO_FAMILY
from headshot.families import family_names


@app.command("tiny-model")
def tiny_model_command(
    family: Annotated[str, typer.Option("--family", "-f", help="Family: " + ", ".join(family_names()) + ".")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save the diffusers model in.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights.")] = 0,
    pretrain_steps: Annotated[
        int, typer.Option("--pretrain-steps", help="Pre-train the UNet this many steps on packaged photos.")
    ] = 0,
) -> None:
    """Build a tiny random-weight model of a real family's shape (for tests and the demo)."""
    from headshot.training.tiny_model import save_tiny_model

    if family not in family_names():
        raise typer.BadParameter(f"expected one of {', '.join(family_names())}", param_hint="--family")
    save_tiny_model(family, out, seed=seed, pretrain_steps=pretrain_steps)  # type: ignore[arg-type]
    typer.echo(f"tiny {family} model saved to {out}")


@app.command("demo")
def demo_command(
    family: Annotated[
        str, typer.Option("--family", "-f", help="Tiny model family: " + ", ".join(family_names()) + ".")
    ] = DEMO_FAMILY,
    outputs: Annotated[Path, typer.Option("--outputs", help="Root folder of all runs.")] = Path("outputs"),
) -> None:
    """End to end on a tiny model and the bundled sample photos (no GPU, no downloads).

    Writes OUTPUTS/models/tiny-<family>/, OUTPUTS/demo/selfies/ and the demo subject's stage folders.
    """
    from headshot.workflow import run_demo

    run_demo(family=family, outputs=outputs)
