"""`headshot batch` against its floor, every case a fresh process as a user would start it.

The floor is the same four stages run directly, subject after subject, in one Python process
(its torch/diffusers imports included, as a script looping over subjects would pay them). The
batch is the real `headshot batch` command on a local Ray (Ray's start included) with 1 or 2
worker slots: each stage's task asks for all the machine's CPUs, or half.

Two costs are told apart, because only one of them grows with the number of subjects:
- the overhead PER SUBJECT: what each further subject costs through the batch over directly,
  from N and 2N subjects: ((batch(2N) - batch(N)) - (direct(2N) - direct(N))) / N;
- the FIXED cost of a batch (Ray's start, its workers' first imports, the shared-storage
  probe): batch(N) - direct(N) - N x the overhead per subject.
and the scaling from 1 to 2 slots at 2N subjects. The caches (class images, encoded inputs)
are warmed by a throwaway subject first, so every case finds them in the same state.

Usage: python bench/bench_batch.py [--subjects 4]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
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
STAGES = tuple(STAGE_OPTIONS)


def run_direct(root: Path, model: str, photos: Path, names: list[str]) -> None:
    """The floor (run in its own process): `headshot run`'s stage functions, subject after subject."""
    from headshot.workflow import RunConfig, run_audit, run_finetune, run_generate, run_prepare

    configs = {}
    for stage, options in STAGE_OPTIONS.items():
        configs[f"{stage}_config"] = root / f"{stage}.yaml"
        configs[f"{stage}_config"].write_text(yaml.safe_dump(options))
    for name in names:
        config = RunConfig(photos=photos, subject=name, base_model=model, outputs=root / "out", **configs)
        for stage in (run_prepare, run_finetune, run_generate, run_audit):
            stage(config, config.layout)


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def direct(work: Path, model: Path, photos: Path, subjects: int) -> float:
    root = Path(tempfile.mkdtemp(dir=work, prefix="direct-"))
    me = [sys.executable, __file__, "--direct", str(root), str(model), str(photos), str(subjects)]
    try:
        return timed(me)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def batch(work: Path, model: Path, photos: Path, subjects: int, slots: int, cpus: int) -> float:
    root = Path(tempfile.mkdtemp(dir=work, prefix="batch-"))
    spec = {
        "base_model": str(model),
        **STAGE_OPTIONS,
        "resources": {stage: {"cpus": cpus / slots} for stage in STAGES},
        "subjects": [{"name": f"subject{i}", "photos": str(photos)} for i in range(subjects)],
    }
    (root / "batch.yaml").write_text(yaml.safe_dump(spec))
    headshot = Path(sys.executable).with_name("headshot")
    try:
        return timed([str(headshot), "batch", str(root / "batch.yaml"), "--outputs", str(root / "out")])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ray_start_stop() -> float:
    """A local Ray's own start and stop, as `headshot batch` does them, in a fresh process."""
    snippet = "import ray; from headshot.batch.runner import connect; connect(None); ray.shutdown()"
    return timed([sys.executable, "-c", snippet])


def machine_cpus() -> int:
    from ray._private.utils import get_num_cpus  # what a local Ray will offer

    return int(get_num_cpus())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each case; the fastest counts")
    parser.add_argument("--direct", nargs=4, metavar=("ROOT", "MODEL", "PHOTOS", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.direct:
        root, model, photos, count = args.direct
        run_direct(Path(root), model, Path(photos), [f"subject{i}" for i in range(int(count))])
        return
    from headshot.samples import make_sample_selfies
    from headshot.training.tiny_model import save_tiny_model

    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["HEADSHOT_CACHE"] = str(work / "cache")  # every case's process inherits it
    try:
        model = save_tiny_model("sd15", work / "tiny-sd15")
        selfies = work / "selfies"
        make_sample_selfies(selfies)
        photos = work / "photos"
        photos.mkdir()
        for pick in GOOD:
            shutil.copy(selfies / f"{pick}.jpg", photos)
        direct(work, model, photos, 1)  # the caches
        n, cpus = args.subjects, machine_cpus()
        cases = {
            f"direct, {n} subjects": lambda: direct(work, model, photos, n),
            f"direct, {2 * n} subjects": lambda: direct(work, model, photos, 2 * n),
            f"batch 1 slot, {n} subjects": lambda: batch(work, model, photos, n, 1, cpus),
            f"batch 1 slot, {2 * n} subjects": lambda: batch(work, model, photos, 2 * n, 1, cpus),
            f"batch 2 slots, {2 * n} subjects": lambda: batch(work, model, photos, 2 * n, 2, cpus),
        }
        cases["a local Ray's start and stop alone"] = ray_start_stop
        runs: dict[str, list[float]] = {case: [] for case in cases}
        for _ in range(args.repeats):  # interleaved, so a busy spell hits every case alike
            for case, run in cases.items():
                runs[case].append(run())
        seconds = {case: min(values) for case, values in runs.items()}
        ray_alone = seconds.pop("a local Ray's start and stop alone")
        print(f"| case (tiny SD1.5, {cpus} CPUs; each a fresh process) | seconds | per subject |")
        print("|---|---|---|")
        for case, value in seconds.items():
            count = int(case.rsplit(", ", 1)[1].split()[0])
            print(f"| {case} | {value:.1f} | {value / count:.1f} |")
        d1, d2, b1, b2, b3 = seconds.values()
        each_direct, each_batch = (d2 - d1) / n, (b2 - b1) / n
        overhead = each_batch - each_direct
        print(f"a further subject: directly {each_direct:.2f} s, through the batch {each_batch:.2f} s")
        print(
            f"batch overhead per subject: {overhead:+.2f} s ({overhead / each_direct:+.1%}; goal under 10%)"
        )
        print(f"fixed cost of a batch (Ray's start, first imports, probe): {b1 - d1 - n * overhead:+.1f} s")
        print(f"of which a local Ray's own start and stop: {ray_alone:.1f} s")
        print(f"scaling 1 -> 2 slots at {2 * n} subjects: {b2 / b3:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
