"""The full-size benchmarks' code path, on the tiny models (bench/full_size_cpu.py, bench/gpu_acceptance.py).

The real-size runs take half an hour on this machine's CPU (or a GPU): recorded in
docs/benchmarks.md, not run here. These run the same functions on the tiny models, so a change
that breaks the benchmarks (the training loop's set-up, the plan's inputs, a pipeline's
arguments) fails here rather than on the GPU machine.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

pytestmark = pytest.mark.filterwarnings("ignore")


def test_the_cpu_bench_trains_renders_and_plans_klein_without_its_text_encoder(tiny_flux2_klein):
    import full_size_cpu

    args = full_size_cpu.parse([str(tiny_flux2_klein), "--steps", "1", "--render-steps", "1"])
    result = full_size_cpu.run(args)
    assert result["settings"]["max_sequence_length"] == 64 and result["settings"]["gradient_checkpointing"]
    assert len(result["losses"]) == 1 and math.isfinite(result["losses"][0])
    # the LoRA the run trained is the one the plan counted (the same add_denoiser_lora)
    assert result["lora_parameters"] == result["plan"]["training"]["lora_parameters"] > 0
    plan_parts = result["plan"]["training"]["parts"]
    # the plan's training parts less the text encoder (never built) and the validation sample
    # (none rendered while training) are what the run holds
    held = sum(size for name, size in plan_parts.items() if name != "validation_sample")
    assert result["plan_training_gib"] == pytest.approx(held - plan_parts["weights.text_encoder"], abs=0.002)
    # measured, not judged: a tiny model's peak growth is within the resident set's noise
    assert result["training_peak_gib"] >= 0 and result["render_peak_gib"] >= 0 and result["render_s"] > 0


def test_the_gpu_acceptance_command_runs_on_the_cpu_and_appends_its_table(tiny_sdxl, tmp_path):
    import gpu_acceptance

    record = tmp_path / "benchmarks.md"
    record.write_text("# Benchmarks\n")
    argv = ["--device", "cpu", "--models", str(tiny_sdxl), "--steps", "2", "--render-steps", "1"]
    assert gpu_acceptance.main([*argv, "--record", str(record)]) == 0
    lines = record.read_text().splitlines()
    assert lines[0] == "# Benchmarks" and lines[2].startswith("### GPU acceptance")
    (row,) = [line for line in lines if line.startswith("| sdxl (tiny) |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "64" and cells[3] == "2" and float(cells[4]) > 0  # px, steps, s/step
