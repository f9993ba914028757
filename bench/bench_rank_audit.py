"""Ranking cost per 1024x1024 candidate inside generate: likeness alone vs likeness + audit.

`score_candidate` is what generate runs on every render: face detection and likeness, and,
since ranking is artifact-aware, the full audit against the subject's reference. Goal: the
audit part under 0.5 s per candidate on 2 CPU cores, so it does not dominate a GPU render.

Run: PYTHONPATH=$PWD OMP_NUM_THREADS=2 python bench/bench_rank_audit.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

from bench_audit import headshot_1024, timed_interleaved
from PIL import Image

from headshot.analysis.audit import AuditConfig
from headshot.analysis.likeness import SubjectIdentity
from headshot.dataset_record import read_dataset
from headshot.pipelines import ranking
from headshot.pipelines.generate_config import RankingOptions
from headshot.samples import make_sample_selfies
from headshot.training.intake import PrepareConfig, prepare_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        make_sample_selfies(Path(tmp) / "selfies")
        config = PrepareConfig(
            photos=Path(tmp) / "selfies", subject="bench", base_model="sd15", outputs=Path(tmp), workers=1
        )
        prepare_dataset(config, show_summary=False)
        identity = SubjectIdentity.from_dataset(read_dataset(config.layout.dataset))
        auditor = ranking.Auditor(config.layout.dataset, AuditConfig())
        image = Image.fromarray(headshot_1024())
        options = RankingOptions()

        def candidate():
            return ranking.Candidate("t/0", "t", {}, 0, "renders/t/0.png", {})

        times = timed_interleaved(
            {
                "likeness": lambda: ranking.score_candidate(candidate(), image, identity, options),
                "audited": lambda: ranking.score_candidate(candidate(), image, identity, options, auditor),
            },
            args.repeats,
        )
    audit_part = times["audited"] - times["likeness"]
    threads = os.environ.get("OMP_NUM_THREADS")
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible, OMP_NUM_THREADS={threads}")
    print(f"score_candidate, likeness only       {times['likeness'] * 1000:7.1f} ms")
    print(f"score_candidate, likeness + audit    {times['audited'] * 1000:7.1f} ms")
    print(f"  the audit's share                  {audit_part * 1000:7.1f} ms  (goal < 500 ms)")
    print(f"  audited / likeness only            {times['audited'] / times['likeness']:.2f}x")


if __name__ == "__main__":
    main()
