"""What the study's recorders cost: a render with the x0 and cross-attention recorders
installed (plus decoding every step's x0) against the same plain render, in one run.

Runs on CUDA when present, else on the CPU, on the tiny SD1.5 and SDXL models (built into
a temporary folder). Prints absolute times and the ratios.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headshot.families import attention  # noqa: E402
from headshot.study import trajectory  # noqa: E402
from headshot.study.model import load_study_model  # noqa: E402
from headshot.study.run import render_image  # noqa: E402
from headshot.training.tiny_model import save_tiny_model  # noqa: E402

PROMPT = "a professional headshot photo of sks person with hair, earrings and glasses"
STEPS, REPEATS = 20, 5


def timed(*functions) -> list[float]:
    """Median time of each function, run interleaved so that load changes hit all alike."""
    times: list[list[float]] = [[] for _ in functions]
    for _ in range(REPEATS):
        for function, samples in zip(functions, times):
            start = time.perf_counter()
            function()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def main() -> None:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # BENCH_THREADS=1 on a shared machine: tiny models gain nothing from threads that contend.
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, {STEPS} steps, median of {REPEATS}")
    with tempfile.TemporaryDirectory() as folder:
        for family in ("sd15", "sdxl"):
            model = load_study_model(None, str(save_tiny_model(family, Path(folder) / family)), device=device)
            pipe = model.pipeline
            size = model.loaded.resolution
            positions = attention.token_positions(pipe, PROMPT, ["sks", "earrings", "glasses", "hair"])

            def plain(model=model, size=size):
                render_image(model, PROMPT, "", size, seed=0, steps=STEPS, guidance_scale=7.0)

            def recorded(model=model, pipe=pipe, size=size, positions=positions):
                with trajectory.X0Recorder(pipe.scheduler) as x0:
                    with attention.CrossAttentionRecorder(pipe, positions, (size // 8, size // 8)) as maps:
                        plain(model, size)
                maps.maps()
                return x0

            def recorded_and_decoded(pipe=pipe):
                trajectory.trajectory_frames(pipe, recorded().steps)

            plain()  # warm-up
            base, rec, dec = timed(plain, recorded, recorded_and_decoded)
            print(
                f"{family}: plain {base * 1000:.0f} ms | with recorders {rec * 1000:.0f} ms "
                f"(x{rec / base:.2f}) | + decoding every x0 {dec * 1000:.0f} ms (x{dec / base:.2f})"
            )


if __name__ == "__main__":
    main()
