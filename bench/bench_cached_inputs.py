"""Benchmark: what cached prompt embeddings and latents save, on the CPU, measured in one run.

A first `headshot finetune` of a model loads its text encoders and VAE to embed the prompts and
encode the photos, and keeps the results in the cache folder (training/frozen_inputs.py); a
second run on the same model finds them and loads neither. Measured on the FLUX tiny layout
with its transformer widened to ~175 MB (tests/memory_support.py) and its T5 encoder widened to
~160 MB (a stand-in for FLUX's 9 GB T5: same classes, more and wider layers): each run is a
fresh `headshot finetune` process, 2 steps, no validation samples; printed: the peak resident
set it adds and the memory plan's estimate for the first (uncached) and the second (cached) run,
and each process's wall time.

    python bench/bench_cached_inputs.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

T5_WIDER = {"num_layers": 24, "num_heads": 16, "d_kv": 64, "d_ff": 16384}


def widened_t5(model: Path) -> None:
    """Replace the model's T5 encoder with a wider one of the same vocabulary and width."""
    import torch
    from transformers import T5Config, T5EncoderModel

    folder = model / "text_encoder_2"
    config = T5Config.from_pretrained(folder)
    for key, value in T5_WIDER.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    encoder = T5EncoderModel(config)
    shutil.rmtree(folder)
    encoder.save_pretrained(folder)


def main() -> int:
    from finetune_support import fast_options, make_dataset
    from memory_support import measured_finetune, widened_model

    from headshot.training.tiny_model import save_tiny_model

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = widened_model(save_tiny_model("flux", root / "tiny"), "flux", root / "wide")
        widened_t5(model)
        options = fast_options(
            steps=2, prior_preservation=False, validation_seeds=[], max_sequence_length=64,
            cache_dir=str(root / "cache"),
        )  # fmt: skip
        rows = []
        for name in ("first run (nothing cached)", "second run (cached inputs)"):
            dataset = make_dataset(root / name.split()[0] / "outputs", "flux", count=3)
            started = time.perf_counter()
            memory = measured_finetune(model, dataset, options, root)
            rows.append((name, memory, time.perf_counter() - started))
        weights = rows[0][1]["weights_bytes"]
    print("cached inputs on the CPU: widened tiny FLUX (transformer "
          f"{weights['transformer'] / 2**20:.0f} MiB, T5 {weights['text_encoder_2'] / 2**20:.0f} MiB), "
          "64x64, 2 steps, fresh processes")  # fmt: skip
    for name, memory, seconds in rows:
        print(
            f"  {name:28s} measured peak {memory['measured_peak_bytes'] / 2**20:6.0f} MiB  "
            f"estimate {memory['estimated_peak_bytes'] / 2**20:6.0f} MiB  "
            f"frozen parts: {memory['frozen_parts_loaded']:8s}  process {seconds:5.1f} s"
        )
    first, second = rows[0][1]["measured_peak_bytes"], rows[1][1]["measured_peak_bytes"]
    print(f"  cached / uncached peak: {second / first:.2f}x; time {rows[1][2] / rows[0][2]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
