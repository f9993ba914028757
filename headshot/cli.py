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
    steps: Annotated[int | None, typer.Option(help="Optimizer steps in all.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate of the LoRA weights.")] = None,
    rank: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Subject images per step and process.")] = None,
    gradient_accumulation: Annotated[
        int | None, typer.Option(help="Micro-batches per optimizer step.")
    ] = None,
    identifier: Annotated[str | None, typer.Option(help="The rare token naming the person.")] = None,
    class_noun: Annotated[str | None, typer.Option(help="woman, man, person...")] = None,
    prior_loss_weight: Annotated[float | None, typer.Option(help="Weight of the class-image loss.")] = None,
    num_class_images: Annotated[
        int | None, typer.Option(help="Class images for prior preservation (cached).")
    ] = None,
    no_prior: Annotated[bool, typer.Option("--no-prior", help="Train without prior preservation.")] = False,
    mixed_precision: Annotated[str | None, typer.Option(help="auto, no, bf16 or fp16.")] = None,
    gradient_checkpointing: Annotated[
        bool | None,
        typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Save memory."),
    ] = None,
    use_8bit_adam: Annotated[
        bool | None, typer.Option("--8bit-adam/--no-8bit-adam", help="bitsandbytes AdamW8bit.")
    ] = None,
    snr_gamma: Annotated[float | None, typer.Option(help="Min-SNR loss weighting gamma.")] = None,
    noise_offset: Annotated[float | None, typer.Option(help="Offset noise strength (0 = off).")] = None,
    face_loss_weight: Annotated[
        float | None, typer.Option(help="Loss weight inside the face mask (1 = plain loss).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of everything random in the run.")] = None,
    checkpoint_steps: Annotated[int | None, typer.Option(help="Checkpoint every N steps.")] = None,
    validation_steps: Annotated[int | None, typer.Option(help="Sample images every N steps.")] = None,
    train_text_encoder: Annotated[
        bool | None,
        typer.Option("--train-text-encoder/--no-train-text-encoder", help="LoRA on the text encoder(s) too."),
    ] = None,
    stop_after_steps: Annotated[
        int | None, typer.Option(help="Stop (checkpointed) after N steps of this run; --resume continues.")
    ] = None,
) -> None:
    """DreamBooth + LoRA fine-tuning of a base model on a prepared dataset.

    Reads OUTPUTS/<subject>/dataset/; writes OUTPUTS/<subject>/lora/:
    pytorch_lora_weights.safetensors (diffusers), kohya/<subject>.safetensors, training.json,
    checkpoints/, samples/ and logs/ (TensorBoard). Every option can also be set in the
    --config YAML file (see configs/finetune.yaml); flags override it.
    """
    from headshot.config import load_config
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    options = dict(
        base_model=base_model, steps=steps, lr=lr, rank=rank, batch_size=batch_size,
        gradient_accumulation=gradient_accumulation, identifier=identifier, class_noun=class_noun,
        prior_loss_weight=prior_loss_weight, num_class_images=num_class_images,
        prior_preservation=False if no_prior else None, mixed_precision=mixed_precision,
        gradient_checkpointing=gradient_checkpointing, use_8bit_adam=use_8bit_adam, snr_gamma=snr_gamma,
        noise_offset=noise_offset, face_loss_weight=face_loss_weight, seed=seed,
        checkpoint_steps=checkpoint_steps, validation_steps=validation_steps,
        train_text_encoder=train_text_encoder, stop_after_steps=stop_after_steps,
    )  # fmt: skip
    settings = load_config(FinetuneConfig, config, options)
    record = finetune_dataset(dataset, settings, resume=resume, allow_pickle=allow_pickle)
    if record is not None:
        typer.echo(
            f"trained {record.steps} steps (final loss {record.final_loss:.4f}); "
            f"LoRA in {dataset.resolve().parent / 'lora'}"
        )


@app.command("generate")
def generate_command(
    lora: Annotated[Path, typer.Argument(help="A lora folder written by `headshot finetune`.")],
    config: ConfigOption = None,
) -> None:
    """Render scene templates with the subject's LoRA, rank and deliver signed headshots.

    Reads OUTPUTS/<subject>/lora/ and dataset/; writes renders/<template>/<seed>.png
    (+ .json) and signed headshots/*.jpg with index.json.
    """
    _not_built("generate", 5)


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
