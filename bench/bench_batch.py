"""`headshot batch` against its floor: four tiny-model subjects with 1 and 2 worker slots (the
scaling ratio), and the batch's overhead per subject over the same stages run directly, one
subject after another, in one process.

The class-image and encoded-input caches are warmed by a throwaway subject first, so every
timed run finds them in the same state. Usage: python bench/bench_batch.py [--subjects 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import yaml  # noqa: E402

GOOD = ["hopper_01_original", "hopper_02_mirror", "hopper_03_crop_tight", "hopper_04_rotate_left"]
STAGE_OPTIONS = {
    "prepare": {"workers": 1, "min_photos": 3},
    "finetune": {
        "steps": 6, "rank": 4, "lr": 1e-3, "num_class_images": 2, "class_inference_steps": 2,
        "class_batch_size": 2, "validation_steps": 0, "validation_seeds": [0],
        "validation_inference_steps": 2, "checkpoint_steps": 2, "tensorboard": False,
    },
    "generate": {
        "templates": ["studio-grey"], "seeds_per_template": 1, "steps": 2, "batch_size": 1,
        "ranking": {"top_k": 1, "require_face": False, "max_relative_distance": None, "audit": False},
    },
    "audit": {"thumbnail": 64},
}  # fmt: skip


def direct(root: Path, model: Path, photos: Path, names: list[str]) -> float:
    """The floor: `headshot run`'s stage functions, subject after subject, in this process."""
    from headshot.workflow import RunConfig, run_audit, run_finetune, run_generate, run_prepare

    configs = {}
    for stage, options in STAGE_OPTIONS.items():
        configs[f"{stage}_config"] = root / f"{stage}.yaml"
        configs[f"{stage}_config"].write_text(yaml.safe_dump(options))
    started = time.perf_counter()
    for name in names:
        config = RunConfig(
            photos=photos, subject=name, base_model=str(model), outputs=root / "out", **configs
        )
        for stage in (run_prepare, run_finetune, run_generate, run_audit):
            stage(config, config.layout)
    return time.perf_counter() - started


def batch(root: Path, model: Path, photos: Path, names: list[str], slots: int) -> float:
    import ray
    from rich.console import Console

    from headshot.batch.config import load_batch
    from headshot.batch.runner import run_batch

    path = root / "batch.yaml"
    subjects = [{"name": name, "photos": str(photos)} for name in names]
    path.write_text(yaml.safe_dump({"base_model": str(model), **STAGE_OPTIONS, "subjects": subjects}))
    ray.init(num_cpus=slots, include_dashboard=False, object_store_memory=80 * 2**20, log_to_driver=False)
    try:
        config = load_batch(path, root / "out")
        started = time.perf_counter()
        record = run_batch(
            config, source=str(path), address=None, record_path=None, console=Console(quiet=True)
        )
        seconds = time.perf_counter() - started
    finally:
        ray.shutdown()
    assert all(entry.state == "delivered" for entry in record.subjects), record.failed
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=4)
    args = parser.parse_args()
    from headshot.samples import make_sample_selfies
    from headshot.training.tiny_model import save_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["HEADSHOT_CACHE"] = str(work / "cache")  # before Ray starts: its workers inherit it
    try:
        model = save_tiny_model("sd15", work / "tiny-sd15")
        selfies = work / "selfies"
        make_sample_selfies(selfies)
        photos = work / "photos"
        photos.mkdir()
        for pick in GOOD:
            shutil.copy(selfies / f"{pick}.jpg", photos)
        names = [f"subject{i}" for i in range(args.subjects)]
        (work / "warm").mkdir()
        direct(work / "warm", model, photos, ["warm"])  # the caches, and this process's imports
        timings = {}
        for case in ("direct", "batch, 1 slot", "batch, 2 slots"):
            root = work / case.replace(", ", "-").replace(" ", "")
            root.mkdir()
            if case == "direct":
                timings[case] = direct(root, model, photos, names)
            else:
                timings[case] = batch(root, model, photos, names, slots=int(case.split(", ")[1][0]))
        floor = timings["direct"]
        print(f"| case ({args.subjects} tiny subjects) | seconds | per subject | vs direct |")
        print("|---|---|---|---|")
        for case, seconds in timings.items():
            print(f"| {case} | {seconds:.1f} | {seconds / args.subjects:.1f} | {seconds / floor:.2f}x |")
        print(f"scaling 1 -> 2 slots: {timings['batch, 1 slot'] / timings['batch, 2 slots']:.2f}x")
        overhead = (timings["batch, 1 slot"] - floor) / args.subjects
        share = overhead * args.subjects / floor
        print(f"batch overhead per subject (1 slot vs direct): {overhead:+.1f} s ({share:+.0%})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
