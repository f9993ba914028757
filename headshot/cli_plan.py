"""The `plan` command: parses its options and calls headshot.plan (imported only when it runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from headshot.cli_common import BaseModelOption, app


@app.command("plan")
def plan_command(
    base_model: BaseModelOption = None,
    resolution: Annotated[
        int | None,
        typer.Option("--resolution", help="Image side in pixels (default: the model's native size)."),
    ] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Training images per step.")] = 1,
    rank: Annotated[int, typer.Option("--rank", min=1, help="LoRA rank.")] = 16,
    quantize_base: Annotated[
        str, typer.Option("--quantize-base", help="The frozen denoiser's weights: none, int8, fp8 or nf4.")
    ] = "none",
    gradient_checkpointing: Annotated[
        bool, typer.Option("--gradient-checkpointing", help="Plan with gradient checkpointing.")
    ] = False,
    mixed_precision: Annotated[
        str, typer.Option("--mixed-precision", help="auto (bf16 on cuda, no on cpu), no, fp16 or bf16.")
    ] = "auto",
    device: Annotated[str, typer.Option("--device", help="Plan for cuda (any machine) or cpu.")] = "cuda",
    no_prior_preservation: Annotated[
        bool, typer.Option("--no-prior-preservation", help="Plan without class images (half the batch).")
    ] = False,
    max_sequence_length: Annotated[
        int | None, typer.Option("--max-sequence-length", help="Prompt tokens (FLUX families; default 512).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as one JSON object.")] = False,
) -> None:
    """Memory for training and rendering a model, offline, before downloading it.

    From the model's own files when they are on disk, else from the shipped full-size configs
    (presets: sd15, sdxl, flux-dev, flux2-klein-base, flux2-klein; or their hub ids).
    """
    import json

    from headshot.config import DEFAULT_BASE_MODEL
    from headshot.plan import PlanRequest, describe, make_plan

    if quantize_base not in ("none", "int8", "fp8", "nf4"):
        raise typer.BadParameter("expected none, int8, fp8 or nf4", param_hint="--quantize-base")
    request = PlanRequest(
        model=base_model or DEFAULT_BASE_MODEL,
        resolution=resolution,
        batch_size=batch_size,
        rank=rank,
        quantize_base=quantize_base,
        gradient_checkpointing=gradient_checkpointing,
        mixed_precision=mixed_precision,
        device=device,
        prior_preservation=not no_prior_preservation,
        max_sequence_length=max_sequence_length,
    )
    plan = make_plan(request)
    if as_json:
        typer.echo(json.dumps(plan, indent=2))
    else:
        for line in describe(plan):
            typer.echo(line)
