"""GPU acceptance: full-size SDXL, FLUX.1-dev and FLUX.2 [klein] 4B base, trained and rendered.

One command on one H100/H200 (goal: under 10 minutes in all): for each model, its shipped
full-size configs with random weights (bench/full_size_support.py: built on the GPU in bf16,
no download), 20 optimizer steps of headshot's own training loop at 1024 px (bf16, batch 1,
LoRA rank 16, no prior preservation, prompts cached at the family's own length) and one
render at the family's own sampler settings. It prints one table (s/step, peak GiB from
torch.cuda.max_memory_allocated against `headshot plan --device cuda` for the same settings,
s/image) and appends it to docs/benchmarks.md.

Gradient checkpointing is the plan's call: off when the plan says training fits in 90% of
the GPU's memory, else on (`--gradient-checkpointing on|off` overrides).

    bash bench/gpu_acceptance.sh                          # on the GPU machine (installs, runs)
    python bench/gpu_acceptance.py --tiny --device cpu    # the same code on the tiny models
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MODELS = ("sdxl", "flux-dev", "flux2-klein-base")
GOAL_S = 600
ROOT = Path(__file__).resolve().parent.parent


def parse(argv):
    from full_size_support import add_run_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    add_run_arguments(
        parser, steps=20, tiny="the families' tiny models (tests the code path)",
        defaults="1024 px, the family's own render steps, 512 tokens (tiny: its own size, 2, 32)",
    )  # fmt: skip
    parser.add_argument(
        "--models", default=",".join(MODELS), help="shipped configs' names or diffusers folders"
    )
    parser.add_argument("--gradient-checkpointing", default="auto", choices=("auto", "on", "off"))
    parser.add_argument(
        "--record", type=Path, default=ROOT / "docs" / "benchmarks.md", help="append the table here"
    )
    return parser.parse_args(argv)


def measure(name: str, args, scratch: Path) -> dict:
    """Train and render one model; its row of the table."""
    import torch
    from full_size_support import (
        build_pipeline,
        finetune_config,
        is_model_folder,
        model_folder,
        planned,
        planned_render,
        planned_training,
        render,
        run_settings,
        train_steps,
    )

    from headshot.families import family_of_folder
    from headshot.training.memory_check import PeakWatch

    folder = model_folder(name, args.tiny, scratch)
    family = family_of_folder(folder)
    tiny = args.tiny or is_model_folder(name)
    defaults = family.template_defaults
    settings = run_settings(
        args, name, folder, family,
        full={"resolution": 1024, "render_steps": defaults.get("steps", 30), "max_sequence_length": 512},
        tiny={"render_steps": 2, "max_sequence_length": 32},
        guidance=defaults.get("guidance"),
        gradient_checkpointing=args.gradient_checkpointing == "on",
    )  # fmt: skip
    plan = planned(folder, settings, args.device)
    if args.gradient_checkpointing == "auto" and plan["training"]["peak_gib"] > 0.9 * _device_gib(
        args.device
    ):
        settings.gradient_checkpointing = True
        plan = planned(folder, settings, args.device)
    if args.device == "cuda":
        torch.cuda.empty_cache()
    watch = PeakWatch(args.device)
    pipeline = build_pipeline(folder, family, torch.bfloat16, args.device)
    state, prompts = train_steps(
        pipeline,
        folder,
        family,
        finetune_config(folder, settings),
        settings.resolution,
        args.device,
        lambda _: None,
    )
    training_peak = watch.peak() / 2**30
    again = PeakWatch(args.device)
    render_s = render(pipeline, family, prompts, settings, args.device)
    render_peak = (again.peak() + again.baseline - watch.baseline) / 2**30
    del pipeline, prompts
    gc.collect()
    if args.device == "cuda":
        torch.cuda.empty_cache()
    timed = state.step_seconds[1:] or state.step_seconds  # the first step warms kernels up
    return {
        "model": (family.name if is_model_folder(name) else name) + (" (tiny)" if tiny else ""),
        "px": settings.resolution,
        "checkpointing": settings.gradient_checkpointing,
        "steps": state.step,
        "s_per_step": statistics.median(timed),
        "finite_loss": all(loss == loss and abs(loss) != float("inf") for loss in state.losses),
        "training_gib": training_peak,
        "plan_training_gib": planned_training(plan),
        "render_steps": settings.render_steps,
        "s_per_image": render_s,
        "render_gib": render_peak,
        "plan_render_gib": planned_render(plan),
    }


def _device_gib(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.get_device_properties(0).total_memory / 2**30
    import psutil

    return psutil.virtual_memory().total / 2**30


def table(rows: list[dict], header: str) -> list[str]:
    lines = [
        header,
        "",
        "| model | px | ckpt | steps | s/step | train peak GiB (plan, measured/plan) "
        "| render steps | s/image | render peak GiB (plan, measured/plan) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['px']} | {'on' if row['checkpointing'] else 'off'} | {row['steps']} "
            f"| {row['s_per_step']:.2f} | {row['training_gib']:.2f} ({row['plan_training_gib']:.2f}, "
            f"{row['training_gib'] / row['plan_training_gib']:.2f}) | {row['render_steps']} "
            f"| {row['s_per_image']:.1f} | {row['render_gib']:.2f} ({row['plan_render_gib']:.2f}, "
            f"{row['render_gib'] / row['plan_render_gib']:.2f}) |"
        )
    return lines


def main(argv=None) -> int:
    args = parse(argv)
    import torch

    from headshot import library_notices

    library_notices.install()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: run on the GPU machine, or --tiny --device cpu for the code path")
        return 1
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="headshot-acceptance-") as scratch:
        for name in args.models.split(","):
            rows.append(measure(name, args, Path(scratch)))
            row = rows[-1]
            print(
                f"{row['model']}: {row['s_per_step']:.2f} s/step, {row['training_gib']:.2f} GiB", flush=True
            )
    total = time.perf_counter() - started
    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    import diffusers

    header = (
        f"### GPU acceptance {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {device} "
        f"(torch {torch.__version__}, diffusers {diffusers.__version__}): {total:.0f} s in all "
        f"(goal {GOAL_S} s){', tiny models' if args.tiny else ''}"
    )
    lines = table(rows, header)
    print("\n".join(lines))
    with open(args.record, "a") as record:
        record.write("\n" + "\n".join(lines) + "\n")
    return 0 if all(row["finite_loss"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
