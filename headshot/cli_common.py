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

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from headshot import __version__
from headshot.errors import HeadshotError, Interrupted
from headshot.terminal import shown, shown_lines

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


def run_app() -> None:
    """Run the app with headshot's exit codes: 0 success, 1 a problem with the input (one line
    naming the file and the reason, never a traceback), 2 a usage error, 130 interrupted
    (saying what was kept and the command that continues)."""
    try:
        app(prog_name="headshot")
    except HeadshotError as exc:  # it names files and folders: escaped (headshot.terminal)
        typer.echo(f"error: {shown_lines(exc)}", err=True)
        sys.exit(1)
    except OSError as exc:
        # A folder that is read-only, a full disk, a file that vanished: the stages' writes
        # are staged (headshot.storage), so the previous outputs are intact; say which file.
        where = shown(exc.filename or "a file")
        typer.echo(f"error: {where}: {shown(exc.strerror or exc)}; the previous outputs are kept", err=True)
        sys.exit(1)
    except MemoryError:
        typer.echo("error: out of memory: an input asks for more than this machine has", err=True)
        sys.exit(1)
    except Interrupted as exc:  # Ctrl-C in a stage that says what it kept
        _say_interrupted(exc.kept)
    except KeyboardInterrupt:  # outside typer (never reached through it: see below)
        _say_interrupted("finished files are kept")
    except SystemExit as exc:  # typer turns Ctrl-C elsewhere into a silent exit 130
        if exc.code == 130 and _caused_by(exc, KeyboardInterrupt):
            _say_interrupted("finished files are kept")
        raise


def _say_interrupted(kept: str) -> None:
    """What was kept, and the command that continues: the same one (re-running resumes)."""
    again = [arg for arg in sys.argv[1:] if arg != "--restart"]  # the same run, not a new one
    typer.echo(f"interrupted: {shown(kept)}", err=True)
    typer.echo(f"continue with: {shown(shlex.join(['headshot', *again]))}", err=True)
    sys.exit(130)


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False
