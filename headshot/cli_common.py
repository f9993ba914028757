"""What every `headshot` command shares: the typer app, the common options, `--version`.

The commands live in `headshot/cli.py` (the stages) and `headshot/cli_signing.py` (sign,
verify, keys); both register on this app. Stages never import the command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headshot import __version__

app = typer.Typer(
    name="headshot",
    help="Disclosed AI headshots: learn a person from selfies, render, sign, verify, audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML file with this command's options; flags override it."),
]
SubjectOption = Annotated[
    str | None, typer.Option("--subject", "-s", help="Name of the subject's output folder.")
]
OutputsOption = Annotated[
    Path | None,
    typer.Option("--outputs", help="Root folder of runs; files go in OUTPUTS/<subject>/."),
]
BaseModelOption = Annotated[
    str | None,
    typer.Option(
        "--base-model",
        "-m",
        help="Preset, hub id, diffusers folder or .safetensors file. Presets: flux2-klein-base (FLUX.2 "
        "\\[klein] 4B base, Apache-2.0: the default; with a LoRA, the LoRA's own), flux2-klein (its "
        "4-step distilled model, for rendering), sdxl, sd15, flux-dev (FLUX.1-dev: non-commercial "
        "licence), tiny-* (random weights, for tests).",
    ),
]
QuantizeOption = Annotated[
    str | None,
    typer.Option(
        "--quantize-base",
        help="The frozen denoiser's weights: none, int8, fp8 or nf4 (generate also auto, its default: "
        "the trained precision); see README.",
    ),
]
AllowPickleOption = Annotated[
    bool,
    typer.Option("--allow-pickle", help="Allow pickle weights (.ckpt/.bin); only for files you trust."),
]


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"headshot {__version__}")
        raise typer.Exit(0)
