"""Which checkpoint to export: the one whose validation samples look most like the person.

Users of every LoRA trainer pick a checkpoint by eye. Here each validation sample with a
face is scored by leave-one-out likeness: its relative distance to the subject's photos
*without* the one photo nearest to it (so a sample that copies a training photo gets no
credit for the copy: it is judged against the other photos, as that photo itself would
be). A checkpoint's score is the mean over its samples with a face, lower is better.

`select: best_likeness` exports the best-scoring validated step (its LoRA tensors are kept
in `checkpoints/best-likeness/` when it is reached, so checkpoint rotation cannot lose it);
it falls back to the last step when no sample showed a face, and says so. `select: last`
exports the last step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from headshot.analysis.likeness import SubjectIdentity
from headshot.bounded_io import read_json
from headshot.errors import HeadshotError
from headshot.records import atomic_write_bytes, atomic_write_json

Select = Literal["best_likeness", "last"]
BEST_FOLDER = "best-likeness"


def leave_one_out_relative(identity: SubjectIdentity, embedding) -> float:
    """Relative distance to the subject's photos other than the nearest one."""
    photos = identity.embeddings
    if len(photos) < 2:
        return identity.score(embedding).relative
    vector = np.asarray(embedding, dtype=np.float32)
    nearest = int(np.argmin(np.linalg.norm(photos - vector, axis=1)))
    others = SubjectIdentity.from_embeddings(np.delete(photos, nearest, axis=0))
    return others.score(vector).relative


@dataclass(frozen=True)
class StepScore:
    step: int
    samples: int
    faces: int
    likeness_loo: float | None  # mean over samples with a face; None without one

    def as_record(self) -> dict:
        value = None if self.likeness_loo is None else round(self.likeness_loo, 4)
        return {"step": self.step, "samples": self.samples, "faces": self.faces, "likeness_loo": value}


def step_scores(history) -> list[StepScore]:
    """Per validated step, from the SampleScores of the run (validation.SampleScore)."""
    by_step: dict[int, list] = {}
    for sample in history:
        by_step.setdefault(sample.step, []).append(sample)
    scores = []
    for step in sorted(by_step):
        samples = by_step[step]
        values = [
            s.likeness_loo for s in samples if s.likeness_loo is not None and math.isfinite(s.likeness_loo)
        ]
        mean = float(np.mean(values)) if values else None
        scores.append(StepScore(step, len(samples), sum(s.face for s in samples), mean))
    return scores


@dataclass
class Selection:
    select: Select
    step: int  # the step whose LoRA is exported
    reason: str
    per_step: list[StepScore] = field(default_factory=list)

    def as_record(self) -> dict:
        return {
            "select": self.select,
            "chosen_step": self.step,
            "reason": self.reason,
            "per_checkpoint": [score.as_record() for score in self.per_step],
        }


def best_step(scores: list[StepScore]) -> StepScore | None:
    """The lowest mean leave-one-out likeness; the earlier step on a tie."""
    scored = [s for s in scores if s.likeness_loo is not None]
    return min(scored, key=lambda s: (s.likeness_loo, s.step)) if scored else None


def choose(history, select: Select, last_step: int) -> Selection:
    scores = step_scores(history)
    if select == "last":
        return Selection(select, last_step, "select: last", scores)
    best = best_step(scores)
    if best is None:
        return Selection(
            select, last_step, "no validation sample showed a face, so the last step is exported", scores
        )
    reason = (
        f"step {best.step} scored best: leave-one-out likeness {best.likeness_loo:.3f} "
        f"(mean of {best.faces} sample(s) with a face)"
    )
    return Selection(select, best.step, reason, scores)


class BestKeeper:
    """Keeps the LoRA tensors of the best-scoring validated step, written when it is reached."""

    def __init__(self, checkpoints: Path):
        self.folder = Path(checkpoints) / BEST_FOLDER

    def update(self, history, step: int, tensors: dict) -> bool:
        """After validating `step`: save its tensors if it is now the best. True when saved."""
        from safetensors.torch import save

        best = best_step(step_scores(history))
        if best is None or best.step != step:
            return False
        atomic_write_bytes(self.folder / "lora.safetensors", save(tensors))
        atomic_write_json(self.folder / "best.json", {"step": step, "likeness_loo": best.likeness_loo})
        return True

    def tensors_for(self, step: int) -> dict:
        """The kept tensors of `step`; an error naming the folder when they are not those."""
        from safetensors.torch import load_file

        record = self.folder / "best.json"
        try:
            kept = read_json(record) if record.is_file() else None
        except HeadshotError:
            kept = None
        if not isinstance(kept, dict) or kept.get("step") != step:
            raise HeadshotError(
                f"{self.folder}: the LoRA of step {step}, chosen by select: best_likeness, is not kept "
                "here; export the last step with select: last, or train again"
            )
        return load_file(str(self.folder / "lora.safetensors"))
