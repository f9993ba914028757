"""A real-size model trained and rendered on the CPU with random weights: measured peak vs the plan.

Why: everything else runs tiny models at 64 px; this proves shapes, dtypes and memory at the
size a person with a GPU box runs (speed is not the point: minutes per step). One model per
run, in its own process (the peak resident set is the process's):

    nice -n 10 python bench/full_size_cpu.py flux2-klein-base --resolution 512
    nice -n 10 python bench/full_size_cpu.py sdxl --resolution 1024
    python bench/full_size_cpu.py flux-dev --resolution 512 --quantize-base int8 --plan-only
    python bench/full_size_cpu.py sdxl --tiny           # the same code on the tiny model (seconds)

It builds the denoiser and VAE from the shipped configs (bench/full_size_support.py: on meta in
bf16, then allocated once), trains `--steps` optimizer steps of headshot's own loop (LoRA,
gradient checkpointing, bf16 autocast, batch 1, no prior preservation) from cached prompt
embeddings (`--max-sequence-length` tokens) so no text encoder is ever resident, renders one
image in `--render-steps` steps, and prints the measured peaks beside `headshot plan`'s for the
same settings on --device cpu less its text encoders. The peak is memory_check.PeakWatch's
(the growth of the peak resident set over the set just before building), with glibc's mmap
threshold lowered as tests/memory_support.py does so freed tensors leave the resident set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

MMAP_THRESHOLD = "65536"  # tests/memory_support.py's: every tensor-sized allocation its own mapping


def parse(argv):
    from full_size_support import add_run_arguments

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model",
        help="shipped full-size configs (flux2-klein-base, sdxl, flux-dev, sd15 ...) or a diffusers folder",
    )
    add_run_arguments(
        parser, steps=2, tiny="the family's tiny model instead (the code path)",
        defaults="512 px, 2 render steps, 64 tokens (tiny: the model's own size)",
    )  # fmt: skip
    parser.add_argument("--quantize-base", default="none")
    parser.add_argument("--plan-only", action="store_true", help="print the plan; allocate nothing")
    parser.add_argument("--json", type=Path, help="also write the result object to this file")
    return parser.parse_args(argv)


def run(args) -> dict:
    import torch
    from full_size_support import (
        build_pipeline,
        finetune_config,
        model_folder,
        planned,
        planned_render,
        planned_training,
        render,
        run_settings,
        train_steps,
    )

    from headshot import library_notices
    from headshot.families import family_of_folder
    from headshot.training.memory_check import PeakWatch

    library_notices.install()
    dtype, device = torch.bfloat16, "cpu"
    with tempfile.TemporaryDirectory(prefix="headshot-full-size-") as scratch:
        folder = model_folder(args.model, args.tiny, Path(scratch))
        family = family_of_folder(folder)
        full = {"resolution": 512, "render_steps": 2, "max_sequence_length": 64}
        settings = run_settings(args, args.model, folder, family, full, {}, quantize_base=args.quantize_base)
        resolution = settings.resolution
        plan = planned(folder, settings, device)
        result = {
            "model": args.model + (" (tiny)" if args.tiny else ""),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "settings": vars(settings),
            "plan_training_gib": planned_training(plan),
            "plan_render_gib": planned_render(plan),
            "plan": plan,
        }
        if args.plan_only:
            return result
        watch = PeakWatch(device)
        started = time.perf_counter()
        pipeline = build_pipeline(folder, family, dtype, device)
        result["build_s"] = round(time.perf_counter() - started, 1)
        config = finetune_config(folder, settings)
        state, prompts = train_steps(pipeline, folder, family, config, resolution, device)
        result["training_peak_gib"] = round(watch.peak() / 2**30, 6)
        result["s_per_step"] = [round(s, 1) for s in state.step_seconds]
        result["losses"] = [round(loss, 4) for loss in state.losses]
        result["lora_parameters"] = state.lora_parameters
        again = PeakWatch(device)  # the render's own peak, over the same start
        result["render_s"] = round(render(pipeline, family, prompts, settings, device), 3)
        # growth over the resident set before building (never below it: a tiny model's noise can be)
        result["render_peak_gib"] = round(max(0, again.peak() + again.baseline - watch.baseline) / 2**30, 6)
    for stage in ("training", "render"):
        result[f"{stage}_measured_over_plan"] = round(
            result[f"{stage}_peak_gib"] / result[f"plan_{stage}_gib"], 3
        )
    return result


def summary(result: dict) -> list[str]:
    lines = [
        f"{result['model']}: {result['settings']['resolution']} px, plan (no text encoders): "
        f"training {result['plan_training_gib']:.2f} GiB, render {result['plan_render_gib']:.2f} GiB"
    ]
    if "training_peak_gib" in result:
        lines.append(
            f"  measured: training {result['training_peak_gib']:.2f} GiB "
            f"({result['training_measured_over_plan']:.2f} x plan), s/step {result['s_per_step']}, "
            f"render {result['render_peak_gib']:.2f} GiB ({result['render_measured_over_plan']:.2f} x plan) "
            f"in {result['render_s']} s; build {result['build_s']} s; losses {result['losses']}"
        )
    return lines


def main(argv=None) -> int:
    args = parse(argv)
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") != MMAP_THRESHOLD and not args.plan_only:
        # glibc reads it at start-up: run again in a process that has it
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
        os.execve(sys.executable, [sys.executable, __file__, *(argv or sys.argv[1:])], env)
    result = run(args)
    for line in summary(result):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
