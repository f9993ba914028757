"""The study's sweep grid: its steps follow --steps unless listed, and LoRA scale 0 (the base
model) is rendered once, not once per training checkpoint."""

from __future__ import annotations

from pathlib import Path

from headshot.analysis.study.config import StudyConfig
from headshot.analysis.study.model import FINAL, LoraCheckpoint, StudyModel
from headshot.analysis.study.sweeps import grid_points, sweep_steps


def _model_with_checkpoints() -> StudyModel:
    """A study model's LoRA bookkeeping (the grid needs no weights): two checkpoints and the final LoRA."""
    loras = {
        label: LoraCheckpoint(label, step, Path(f"{label}.safetensors"), label)
        for label, step in (("step-000100", 100), ("step-000200", 200), (FINAL, 300))
    }
    return StudyModel(loaded=None, device="cpu", loras=loras)


def test_sweep_steps_follow_the_study_steps_unless_listed():
    assert sweep_steps(StudyConfig()) == [10, 20, 30]
    assert sweep_steps(StudyConfig(steps=12)) == [4, 8, 12]
    assert sweep_steps(StudyConfig(steps=2)) == [1, 2]
    assert sweep_steps(StudyConfig(steps=12, sweep={"steps": [5, 50]})) == [5, 50]


def test_lora_scale_zero_is_rendered_once_not_per_checkpoint():
    config = StudyConfig(steps=3, sweep={"guidance_scales": [5.0], "steps": [3], "lora_scales": [0.0, 1.0]})
    points = grid_points(_model_with_checkpoints(), config)
    off = [p for p in points if p.lora_scale == 0.0]
    assert [(p.checkpoint, p.checkpoint_step) for p in off] == [(FINAL, 300)]
    on = [p.checkpoint for p in points if p.lora_scale == 1.0]
    assert on == ["step-000100", "step-000200", FINAL]
    assert len(points) == 4  # was 6: scale 0 once per checkpoint
