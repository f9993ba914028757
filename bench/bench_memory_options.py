"""Benchmark: what each memory option costs in step time, on the CPU, measured in one run.

`headshot finetune`'s own set-up and trainer (open_session + train) on the FLUX tiny layout
widened to ~175 MB (tests/memory_support.py), 64x64, batch 1, no prior preservation: the
median step time of quantize_base none / int8 / fp8 and of gradient checkpointing, each over
the plain run's, cases interleaved round by round, and the memory plan's estimate of each.
A CPU says little about a GPU's ratios (its int8 kernels differ); bench_quantized_base.py is
the GPU measurement.

    python bench/bench_memory_options.py [--steps N] [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

CASES = {
    "none": {},
    "gradient_checkpointing": {"gradient_checkpointing": True},
    "int8": {"quantize_base": "int8"},
    "fp8": {"quantize_base": "fp8"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="steps per case and round (first is warm-up)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from finetune_support import make_dataset
    from memory_support import widened_model

    from headshot import library_notices
    from headshot.training.finetune import open_session
    from headshot.training.finetune_config import FinetuneConfig
    from headshot.training.tiny_model import save_tiny_model
    from headshot.training.trainer import train

    library_notices.install()
    torch.set_num_threads(1)  # shared cores: one thread gives steadier timings
    times = {name: [] for name in CASES}
    estimates = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = widened_model(save_tiny_model("flux", root / "tiny"), "flux", root / "wide")
        for round_ in range(args.rounds):
            for name, options in CASES.items():
                dataset = make_dataset(root / f"{name}-{round_}" / "outputs", "flux", count=3)
                config = FinetuneConfig(
                    base_model=str(model), steps=args.steps, checkpoint_steps=0, validation_steps=0, rank=4,
                    prior_preservation=False, tensorboard=False, max_sequence_length=64,
                    cache_dir=root / "cache", **options,
                )  # fmt: skip
                session = open_session(dataset, config)
                session.run.on_step_end = lambda *_: None
                try:
                    state = train(session.run, session.state, lambda *_: None)
                finally:
                    session.close()
                times[name].extend(state.step_seconds[1:])
                estimates[name] = session.memory.peak if session.memory else None
    plain = statistics.median(times["none"])
    print("memory options on the CPU: widened tiny FLUX (~175 MB transformer), 64x64, batch 1, 1 thread")
    for name, values in times.items():
        median = statistics.median(values)
        estimate = estimates[name] / 2**20 if estimates[name] else float("nan")
        print(
            f"  {name:24s} {median * 1000:8.1f} ms/step  {median / plain:5.2f}x  "
            f"memory plan {estimate:6.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
