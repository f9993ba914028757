"""The `headshot` command line: parses arguments and calls one entry function per stage.

Nothing here does the work; stages never import this module. Exit codes: 0 success,
1 user error (a clear message, no traceback), 2 usage error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from headshot.cli_common import (
    AllowPickleOption,
    BaseModelOption,
    ConfigOption,
    OutputsOption,
    QuantizeOption,
    SubjectOption,
    app,
    require,
    run_app,
)
from headshot.config_docs import option_help
from headshot.terminal import shown, shown_path
from headshot.training.finetune_config import FinetuneConfig as _Finetune


@app.command("prepare")
def prepare_command(
    photos: Annotated[
        Path | None,
        typer.Argument(help="Folder of the subject's photos (JPEG, PNG, WebP, TIFF, BMP, HEIC)."),
    ] = None,
    subject: SubjectOption = None,
    base_model: BaseModelOption = None,
    outputs: OutputsOption = None,
    resolution: Annotated[
        int | None,
        typer.Option("--resolution", help="Crop size in pixels (default: the base model's own)."),
    ] = None,
    min_photos: Annotated[
        int | None, typer.Option("--min-photos", help="Fewer accepted photos than this is an error (5).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Photos analysed in parallel processes (2).")
    ] = None,
    detector: Annotated[
        str | None, typer.Option("--detector", help="Face detector: hog (fast, default) or cnn.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Check and crop selfies into a training set.

    Reads PHOTOS; writes OUTPUTS/<subject>/dataset/: images/*.png, masks/*.png and
    dataset.json with a verdict and reason for every source photo. Thresholds: see
    configs/prepare.yaml.
    """
    from headshot.config import load_config
    from headshot.training.intake import PrepareConfig, prepare_dataset

    require(photos, config, "photos", "PHOTOS")
    require(subject, config, "subject", "--subject", "option")
    options = dict(
        photos=photos,
        subject=subject,
        base_model=base_model,
        outputs=outputs,
        resolution=resolution,
        min_photos=min_photos,
        workers=workers,
        detector=detector,
    )
    prepare_dataset(load_config(PrepareConfig, config, options))


@app.command("finetune")
def finetune_command(
    dataset: Annotated[Path, typer.Argument(help="A dataset folder written by `headshot prepare`.")],
    base_model: BaseModelOption = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the latest checkpoint; error if its settings differ.")
    ] = False,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start a new run, removing the old checkpoints.")
    ] = False,
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
    snr_gamma: Annotated[  # text: the config model reads auto, null and numbers alike
        str | None, typer.Option(help=option_help(_Finetune, "snr_gamma"))
    ] = None,
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
        int | None, typer.Option(help="Stop (checkpointed) after N steps; the same command continues.")
    ] = None,
    lora_layers: Annotated[str | None, typer.Option(help=option_help(_Finetune, "lora_layers"))] = None,
    timestep_sampling: Annotated[
        str | None, typer.Option(help=option_help(_Finetune, "timestep_sampling"))
    ] = None,
    training_guidance: Annotated[
        float | None, typer.Option(help=option_help(_Finetune, "training_guidance"))
    ] = None,
    max_sequence_length: Annotated[
        int | None, typer.Option(help=option_help(_Finetune, "max_sequence_length"))
    ] = None,
    quantize_base: QuantizeOption = None,
) -> None:
    """DreamBooth + LoRA fine-tuning of a base model on a prepared dataset.

    Reads OUTPUTS/<subject>/dataset/; writes OUTPUTS/<subject>/lora/:
    pytorch_lora_weights.safetensors (diffusers), kohya/<subject>.safetensors, training.json,
    checkpoints/, samples/ and logs/ (TensorBoard). Every option can also be set in the
    --config YAML file (see configs/finetune.yaml); flags override it. Running the same
    command again continues from the latest checkpoint with the same settings (after Ctrl-C,
    a kill or --stop-after-steps); with other settings it starts a new run.
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
        train_text_encoder=train_text_encoder, stop_after_steps=stop_after_steps, lora_layers=lora_layers,
        timestep_sampling=timestep_sampling, training_guidance=training_guidance,
        max_sequence_length=max_sequence_length, quantize_base=quantize_base,
    )  # fmt: skip
    if resume and restart:
        raise typer.BadParameter("give --resume or --restart, not both", param_hint="--restart")
    settings = load_config(FinetuneConfig, config, options)
    mode = True if resume else False if restart else "auto"
    record = finetune_dataset(dataset, settings, resume=mode, allow_pickle=allow_pickle)
    if record is not None:  # the result on stdout; progress went to stderr
        typer.echo(
            f"trained {record.steps} steps (final loss {record.final_loss:.4f}); "
            f"LoRA in {shown_path(dataset.resolve().parent / 'lora')}"
        )


@app.command("generate")
def generate_command(
    lora: Annotated[Path, typer.Argument(help="A lora folder written by `headshot finetune`.")],
    config: ConfigOption = None,
    templates: Annotated[
        list[str] | None,
        typer.Option("--template", "-t", help="Template name or YAML file (repeat); default: all shipped."),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="Seeds per template and variation (seed_start..+N).")
    ] = None,
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
    quantize_base: QuantizeOption = None,
    allow_empty: Annotated[
        bool,
        typer.Option("--allow-empty", help="Exit 0 even when no headshot is delivered (default: exit 1)."),
    ] = False,
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
        allow_empty=allow_empty or None,
        ranking={"top_k": top_k} if top_k is not None else None,
        performance={"quantize_base": quantize_base} if quantize_base else None,
    )
    options = load_config(GenerateConfig, config, overrides)
    if seeds is not None:  # --seeds N wins over a `seeds:` list in the config file
        options = options.model_copy(update={"seeds": None})
    index = generate(lora, options)
    if index is not None:  # the result on stdout; progress went to stderr
        typer.echo(f"headshots in {shown_path(index.parent)} (index: {shown_path(index)})")


# Commands kept in their own modules register on `app` when imported here, one line each;
# the import's place is the commands' place in --help (sign and verify after generate, as in
# the pipeline). Such a module imports heavy libraries only inside its command functions
# (see headshot/cli_common.py; tests/test_cli_startup.py checks every registered command).
from headshot import cli_plan, cli_signing  # noqa: E402, F401  (plan; sign, verify, check-photo, keys)


@app.command("audit")
def audit_command(
    images: Annotated[Path, typer.Argument(help="Folder of images to score (headshots or any photos).")],
    dataset: Annotated[
        Path | None,
        typer.Option("--dataset", "-d", help="The subject's dataset folder (written by `headshot prepare`)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder for the audit (default: the dataset's sibling audit/)."),
    ] = None,
    photos: Annotated[
        Path | None,
        typer.Option(
            "--photos", "-p", help="The subject's source photos, for dataset crops too small to measure."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Measure likeness and known AI-headshot artifacts against the subject's real photos.

    Scores every image in IMAGES against the accepted photos of DATASET and writes
    metrics.csv, report.html and plots/ into the audit folder. Images without a face or
    that cannot be read get a row saying so.
    """
    from headshot.analysis.audit import AuditConfig, audit_folder
    from headshot.config import load_config

    require(dataset, config, "dataset", "--dataset", "option")
    options = load_config(AuditConfig, config, {"dataset": dataset, "out": out, "photos": photos})
    result = audit_folder(images, options.dataset, options.out, options)
    if not result.rows:
        typer.echo(f"{shown(images)}: no images (jpg, png, webp, tiff, bmp, heic) to audit")
    for row in result.rows:
        detail = ", ".join(row.flags) if row.status == "ok" else row.reason
        typer.echo(shown(f"{row.name}: {row.status}" + (f" - {detail}" if detail else " - no flags")))
    typer.echo(f"wrote {shown(result.csv_path)} and {shown(result.report_path)}")


@app.command("study")
def study_command(
    lora: Annotated[
        Path | None, typer.Argument(help="A lora folder (optional: the base model alone).")
    ] = None,
    base_model: BaseModelOption = None,
    prompt: Annotated[
        str | None,
        typer.Option("--prompt", help="Prompt; {identifier} and {class_noun} come from the LoRA."),
    ] = None,
    tokens: Annotated[
        str | None,
        typer.Option("--tokens", help="Comma-separated prompt words to map attention for."),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the studied render.")] = None,
    steps: Annotated[
        int | None, typer.Option("--steps", help="Denoising steps of the studied render.")
    ] = None,
    guidance_scale: Annotated[
        float | None, typer.Option("--guidance", help="Guidance scale of the studied render.")
    ] = None,
    no_sweep: Annotated[bool, typer.Option("--no-sweep", help="Skip the parameter sweep.")] = False,
    subject: SubjectOption = None,
    outputs: OutputsOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write to (default OUTPUTS/<subject>/audit/study)."),
    ] = None,
    allow_pickle: AllowPickleOption = False,
    config: ConfigOption = None,
) -> None:
    """Research the generation process: x0 trajectory, cross-attention maps, parameter sweeps.

    Writes OUTPUTS/<subject>/audit/study/ (the subject of the LoRA folder, or --subject):
    trajectory.png, attention/*.png + attention.npz, sweep.png, plots/*.png, study.json and
    a self-contained report.html. Options also come from --config (see configs/study.yaml).
    """
    from headshot.study.config import load_study_config
    from headshot.study.run import run_study

    options = dict(
        lora=lora,
        base_model=base_model,
        prompt=prompt,
        tokens=[word for word in tokens.split(",") if word.strip()] if tokens is not None else None,
        seed=seed,
        steps=steps,
        guidance_scale=guidance_scale,
        subject=subject,
        outputs=outputs,
        out=out,
        allow_pickle=allow_pickle or None,
        sweep={"enabled": False} if no_sweep else None,
    )
    study_config = load_study_config(config, **options)
    run_study(study_config, source=str(config) if config else "config")  # it says where it wrote


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

    require(photos, config, "photos", "PHOTOS")
    require(subject, config, "subject", "--subject", "option")
    options = dict(photos=photos, subject=subject, base_model=base_model, outputs=outputs)
    layout = run_all(RunConfig.from_cli(config, **options, allow_pickle=allow_pickle or None))
    typer.echo(f"headshots in {shown_path(layout.headshots)}; audit in {shown_path(layout.audit)}")


# `headshot batch` (Ray) after run: the same stages for many subjects.
from headshot.batch import command as _batch_command  # noqa: E402, F401

# isort: split
# The tiny models and the demo (headshot/cli_demo.py).
from headshot import cli_demo  # noqa: E402, F401  (registers tiny-model, demo)

# isort: split
# The manifest repository's server comes last in --help.
from headshot import cli_service  # noqa: E402, F401  (registers serve, store import)


def main() -> None:
    """The console script: every command, errors as one line, Ctrl-C as what was kept
    (headshot.cli_common.run_app)."""
    # The libraries' download bars are replaced by headshot's own progress; their known
    # noise is dropped by message (headshot/library_notices.py), real warnings still show.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from headshot import library_notices

    library_notices.install()
    run_app()


if __name__ == "__main__":
    main()
