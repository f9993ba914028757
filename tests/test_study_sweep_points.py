"""The study's sweep grid: its steps follow --steps unless listed, and LoRA scale 0 (the base
model) is rendered once, not once per training checkpoint."""

from __future__ import annotations

from pathlib import Path

from headshot.study.config import StudyConfig
from headshot.study.model import FINAL, LoraCheckpoint, StudyModel
from headshot.study.sweeps import grid_points, sweep_steps


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


def test_contact_sheet_tiles_carry_their_numbers_and_the_sweep_table_a_number_column():
    import numpy as np
    from PIL import Image

    from headshot.study.report import _sweep_section
    from headshot.study.trajectory import contact_sheet

    frames = [Image.new("RGB", (64, 64), (128, 128, 128))] * 4
    plain = np.asarray(contact_sheet(frames, 64, 2))
    labelled = np.asarray(contact_sheet(frames, 64, 2, ["1", "2", "3", "4"]))
    assert plain.shape == labelled.shape == (128, 128, 3) and (plain == 128).all()
    for left, top in ((0, 0), (64, 0), (0, 64), (64, 64)):  # each tile's corner: white digits on black
        corner = labelled[top : top + 14, left : left + 12]
        assert (corner > 200).all(axis=2).any() and (corner == 0).all(axis=2).any()
        assert (labelled[top + 32 : top + 64, left + 32 : left + 64] == 128).all()
    entry = {"guidance_scale": 5.0, "steps": 3, "metrics": {"sharpness": 0.5}}
    data = {
        "knobs": {"guidance_scale": [5.0], "steps": [3]},
        "entries": [entry, entry],
        "mode": "grid",
        "seeds": [0],
    }
    table = "".join(_sweep_section(data, {}, ["sharpness"]))
    assert "<tr><th>#</th><th>guidance_scale</th>" in table and "<tr><td>2</td><td>5</td>" in table
