"""The `headshot` command line: parses arguments and calls one entry function per stage.

Nothing here does the work; stages never import this module. Exit codes: 0 success,
1 user error (a clear message, no traceback), 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from headshot import __version__
from headshot.errors import HeadshotError

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
        help="Preset (sdxl, sd15, tiny-sd15, tiny-sdxl), hub id, diffusers folder or .safetensors file.",
    ),
]
AllowPickleOption = Annotated[
    bool,
    typer.Option("--allow-pickle", help="Allow pickle weights (.ckpt/.bin); only for files you trust."),
]


def _not_built(stage: str, issue: int) -> None:
    raise HeadshotError(f"`headshot {stage}` is not built yet (tracked in issue {issue}).")


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"headshot {__version__}")
        raise typer.Exit(0)


@app.command("prepare")
def prepare_command(
    photos: Annotated[Path, typer.Argument(help="Folder of the subject's photos (JPEG, PNG, WebP, TIFF).")],
    subject: SubjectOption = None,
    base_model: BaseModelOption = None,
    outputs: OutputsOption = None,
    config: ConfigOption = None,
) -> None:
    """Check and crop selfies into a training set.

    Reads PHOTOS; writes OUTPUTS/<subject>/dataset/: images/*.png, masks/*.png and
    dataset.json with a verdict and reason for every source photo.
    """
    _not_built("prepare", 3)


@app.command("finetune")
def finetune_command(
    dataset: Annotated[Path, typer.Argument(help="A dataset folder written by `headshot prepare`.")],
    base_model: BaseModelOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint.")] = False,
    allow_pickle: AllowPickleOption = False,
    config: ConfigOption = None,
) -> None:
    """DreamBooth + LoRA fine-tuning of a base model on a prepared dataset.

    Reads OUTPUTS/<subject>/dataset/; writes OUTPUTS/<subject>/lora/:
    pytorch_lora_weights.safetensors (diffusers), a kohya export, training.json,
    checkpoints/ and samples/.
    """
    _not_built("finetune", 4)


@app.command("generate")
def generate_command(
    lora: Annotated[Path, typer.Argument(help="A lora folder written by `headshot finetune`.")],
    config: ConfigOption = None,
    templates: Annotated[
        list[str] | None,
        typer.Option("--template", "-t", help="Template name or YAML file (repeat); default: all shipped."),
    ] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Seeds per template and variation.")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", help="Headshots delivered per template.")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per pipeline call.")] = None,
    max_images: Annotated[
        int | None, typer.Option("--max-images", help="Render at most this many new images, then stop.")
    ] = None,
    base_model: BaseModelOption = None,
    signing_config: Annotated[
        Path | None, typer.Option("--signing-config", help="Signing YAML; default: development keys.")
    ] = None,
    allow_pickle: AllowPickleOption = False,
) -> None:
    """Render scene templates with the subject's LoRA, rank and deliver signed headshots.

    Reads OUTPUTS/<subject>/lora/ and dataset/; writes renders/<template>/[<variant>-]<seed>.png
    (+ .json) and signed headshots/*.jpg with index.json. Re-running skips finished renders.
    Under `accelerate launch --num_processes N -m headshot generate ...` the grid is split.
    """
    from headshot.config import load_config
    from headshot.pipelines.generate import generate
    from headshot.pipelines.generate_config import GenerateConfig

    overrides = dict(
        templates=templates or None,
        seeds_per_template=seeds,
        batch_size=batch_size,
        max_images=max_images,
        base_model=base_model,
        signing_config=signing_config,
        allow_pickle=allow_pickle or None,
        ranking={"top_k": top_k} if top_k is not None else None,
    )
    generate(lora, load_config(GenerateConfig, config, overrides))


@app.command("sign")
def sign_command(
    images: Annotated[list[Path], typer.Argument(help="Images to sign.")],
    config: ConfigOption = None,
) -> None:
    """Sign images with a C2PA manifest declaring them AI-generated (+ XMP, watermark)."""
    _not_built("sign", 6)


@app.command("verify")
def verify_command(
    files: Annotated[list[Path], typer.Argument(help="Images to check.")],
) -> None:
    """Read any image's C2PA manifest, XMP and watermark; say if it is declared AI-generated."""
    _not_built("verify", 6)


@app.command("audit")
def audit_command(
    images: Annotated[Path, typer.Argument(help="Folder of images to score (headshots or any photos).")],
    config: ConfigOption = None,
) -> None:
    """Measure likeness and known AI-headshot artifacts against the subject's real photos.

    Writes OUTPUTS/<subject>/audit/: metrics.csv, report.html and plots/.
    """
    _not_built("audit", 7)


@app.command("study")
def study_command(
    lora: Annotated[
        Path | None, typer.Argument(help="A lora folder (optional: the base model alone).")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Research the generation process: x0 trajectory, cross-attention maps, parameter sweeps.

    Writes OUTPUTS/<subject>/audit/study/ and its section of report.html.
    """
    _not_built("study", 7)


keys_app = typer.Typer(
    help="Signing credentials: development CA and signing certificate.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init_command() -> None:
    """Create development credentials (a local CA and an ES256 signing certificate)."""
    _not_built("keys init", 6)


@app.command("run")
def run_command(
    photos: Annotated[Path | None, typer.Argument(help="Folder of the subject's photos.")] = None,
    subject: SubjectOption = None,
    base_model: BaseModelOption = None,
    outputs: OutputsOption = None,
    allow_pickle: AllowPickleOption = False,
    config: ConfigOption = None,
) -> None:
    """All stages end to end: prepare, finetune, generate (+sign), audit."""
    from headshot.workflow import RunConfig, run_all

    options = dict(photos=photos, subject=subject, base_model=base_model, outputs=outputs)
    run_all(RunConfig.from_cli(config, **options, allow_pickle=allow_pickle or None))


@app.command("tiny-model")
def tiny_model_command(
    family: Annotated[str, typer.Option("--family", "-f", help="sd15 or sdxl.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to save the diffusers model in.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random weights.")] = 0,
) -> None:
    """Build a tiny random-weight model of a real family's shape (for tests and the demo)."""
    from headshot.pipelines.families import FAMILIES
    from headshot.pipelines.tiny import save_tiny_model

    if family not in FAMILIES:
        raise typer.BadParameter(f"expected one of {', '.join(FAMILIES)}", param_hint="--family")
    save_tiny_model(family, out, seed=seed)  # type: ignore[arg-type]
    typer.echo(f"tiny {family} model saved to {out}")


@app.command("demo")
def demo_command(
    family: Annotated[str, typer.Option("--family", "-f", help="Tiny model family: sd15 or sdxl.")] = "sd15",
    outputs: Annotated[Path, typer.Option("--outputs", help="Root folder of all runs.")] = Path("outputs"),
) -> None:
    """End to end on a tiny model and the bundled sample photos (no GPU, no downloads).

    Writes OUTPUTS/models/tiny-<family>/, OUTPUTS/demo/selfies/ and the demo subject's stage folders.
    """
    from headshot.workflow import run_demo

    run_demo(family=family, outputs=outputs)


def main() -> None:
    try:
        app(prog_name="headshot")
    except HeadshotError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted; finished files are kept, re-run to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
