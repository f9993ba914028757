"""What every `headshot` command shares: the typer app, the common options, `--version`.

The commands live in `headshot/cli.py` (the stages) and in modules beside it
(`headshot/cli_signing.py`: sign, verify, keys), each registering on this app. Stages never
import the command line.

Importing a command module must stay cheap: `headshot --help` and every command's `--help`
import all of them, and must not wait seconds for torch, diffusers or transformers
(tests/test_cli_startup.py holds that). So a command module imports only typer, pydantic
and light headshot modules at the top, and everything else inside the command's function.
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
        help="Preset (sdxl, sd15, flux-dev, flux2-klein-base, flux2-klein, tiny-*), hub id, diffusers folder "
        "or .safetensors file.",
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


def require(value: object, config: Path | None, key: str, hint: str, kind: str = "argument") -> None:
    """A value the command needs, from the command line or its --config file: missing from both
    is a usage error (exit 2), worded as one: "Missing argument 'PHOTOS'"."""
    from typer._click.exceptions import MissingParameter  # typer's own click, which it catches
    from typer._click.globals import get_current_context

    if value is not None:
        return
    if config is not None and Path(config).is_file():
        from headshot.config import read_yaml

        if read_yaml(Path(config)).get(key) is not None:
            return
    raise MissingParameter(
        f"Give it on the command line or as '{key}:' in the --config file.",
        ctx=get_current_context(silent=True),
        param_hint=f"'{hint}'",
        param_type=kind,
    )


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"headshot {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    pass
