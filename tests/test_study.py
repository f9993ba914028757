"""`headshot study` end to end on the tiny models: the files, their shapes and contents."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from study_support import finetuned_lora

from headshot.study.config import load_study_config
from headshot.study.run import run_study
from tests.service_support import headless_chromium

TOKENS = ["sks", "earrings", "glasses", "hair"]
GENERIC = ("high_frequency_energy", "rms_contrast")


@pytest.fixture(scope="module")
def sd15_study(tiny_sd15, tmp_path_factory):
    """A study of a real finetune's LoRA (with its step-3 checkpoint) on the tiny SD1.5 model, full grid."""
    lora = finetuned_lora(tiny_sd15, "sd15", tmp_path_factory.mktemp("outputs"), keep_dataset=False)
    config = load_study_config(
        None,
        lora=lora,
        steps=3,
        sheet_columns=3,
        sweep={"guidance_scales": [1.0, 5.0], "steps": [2, 3], "lora_scales": [0.0, 1.0]},
        refine={"enabled": True, "seeds": [0, 1]},
    )
    folder = run_study(config)
    return folder, json.loads((folder / "study.json").read_text())


def test_study_goes_to_the_subjects_audit_folder(sd15_study):
    from headshot.analysis.metrics import METRICS
    from headshot.study.artifacts import NEEDS_REFERENCE

    folder, record = sd15_study
    assert folder.parts[-3:] == ("ada", "audit", "study")
    # No dataset next to this LoRA: the audit's metrics that need no reference photos.
    assert record["dataset"] is None
    assert record["metrics"] == [*GENERIC, *(s.name for s in METRICS if s.name not in NEEDS_REFERENCE)]
    assert record["family"] == "sd15"
    assert record["prompt"].startswith("a professional headshot photo of sks woman")  # from training.json


def test_trajectory_sheet_holds_one_decoded_x0_per_step(sd15_study):
    folder, record = sd15_study
    trajectory = record["trajectory"]
    # PNDM (the SD1.5 scheduler) calls the model twice at its second timestep: steps + 1 calls.
    assert trajectory["frames"] == len(trajectory["timesteps"]) == 4
    assert trajectory["timesteps"] == sorted(trajectory["timesteps"], reverse=True)
    sheet = Image.open(folder / "trajectory.png")
    assert sheet.size == (3 * 64, 2 * 64) == tuple(trajectory["sheet"]["size"])
    tiles = np.asarray(sheet.convert("RGB"), dtype=np.float64)
    first, last = tiles[:64, :64], tiles[64:, :64]
    final = np.asarray(Image.open(folder / "final.png").convert("RGB"), dtype=np.float64)
    # The last step's x0 is the delivered image; the first one is still far from it.
    assert np.abs(last - final).mean() < 1.0
    assert np.abs(first - final).mean() > 2.0
    curves = trajectory["curves"]
    assert set(curves) >= {"high_frequency_energy", "rms_contrast", "change_to_final", "identity_to_final"}
    assert all(len(values) == 4 for values in curves.values())
    assert curves["change_to_final"][-1] == 0.0 and curves["change_to_final"][0] > 0.0
    assert curves["identity_to_final"] == [None] * 4  # random weights draw no face
    assert record["trajectory"]["settles_at_step"]["change_to_final"] in range(4)


def test_attention_maps_per_word_are_normalised_and_structured(sd15_study):
    folder, record = sd15_study
    with np.load(folder / "attention.npz") as data:
        maps, per_step, words = data["maps"], data["per_step"], list(data["words"])
    assert words == TOKENS
    assert maps.shape == (4, 8, 8)  # (words, latent H, latent W) for 64x64 images
    assert per_step.shape == (4, 4, 8, 8)  # one slice per recorded step
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    assert (maps.std(axis=(1, 2)) > 0.05).all()
    # Each word attends somewhere of its own: the maps are not copies of one another.
    assert not np.allclose(maps[0], maps[1])
    positions = {t["word"]: t["positions"] for t in record["attention"]["tokens"]}
    assert positions["sks"] == [6]  # after <start> a professional headshot photo of
    for token in record["attention"]["tokens"]:
        overlay = Image.open(folder / token["file"])
        assert overlay.size == (64, 64)


def test_sweep_has_every_grid_point_and_the_lora_knobs_act(sd15_study):
    folder, record = sd15_study
    sweep = record["sweep"]
    assert sweep["knobs"] == {
        "guidance_scale": [1.0, 5.0],
        "steps": [2, 3],
        "lora_scale": [0.0, 1.0],
        "checkpoint": ["step-000003", "final"],
    }
    # Finetune wrote step-000003 and step-000006; the last one is the final LoRA itself.
    assert record["lora"]["skipped_checkpoints"] == []
    studied = [(c["label"], c["step"]) for c in record["lora"]["checkpoints"]]
    assert studied == [("step-000003", 3), ("final", 6)]
    entries = sweep["entries"]
    # LoRA scale 0 renders the base model whatever the checkpoint: once per guidance and steps.
    assert len(entries) == 12
    assert len({(e["guidance_scale"], e["steps"], e["lora_scale"], e["checkpoint"]) for e in entries}) == 12
    for entry in entries:
        assert set(entry["metrics"]) == set(record["metrics"])
        assert all(np.isfinite(entry["metrics"][name]) for name in GENERIC)
        # The audit's face metrics are there, and empty: random weights draw no face.
        assert {entry["metrics"][name] for name in record["metrics"] if name not in GENERIC} == {None}

    def metrics(scale, checkpoint):
        return [e["metrics"] for e in entries if e["lora_scale"] == scale and e["checkpoint"] == checkpoint]

    # LoRA off: the checkpoint cannot matter, so it is not re-rendered per checkpoint. LoRA on:
    # the final weights differ from the earlier ones.
    assert metrics(0.0, "step-000003") == [] and len(metrics(0.0, "final")) == 4
    assert metrics(1.0, "final") != metrics(1.0, "step-000003")
    assert metrics(1.0, "final") != metrics(0.0, "final")
    assert Image.open(folder / "sweep.png").size == (3 * 64, 4 * 64)  # 12 images, 3 columns
    for knob in sweep["knobs"]:
        assert Image.open(folder / sweep["plots"][knob]).width > 200


def test_report_is_self_contained_with_every_image(sd15_study):
    folder, record = sd15_study
    page = (folder / "report.html").read_text()
    # final, trajectory, curves, 4 overlays, per-step attention, sweep sheet, 4 knob plots,
    # and two seeds before and after the face-detail pass
    assert page.count("src='data:image/png;base64,") == 17
    assert "http://" not in page and "https://" not in page
    assert "settles at step" in page and "step-000003" in page
    # PNDM's repeated timestep is explained where the page lists the timesteps.
    repeated = [
        t for t in record["trajectory"]["timesteps"] if record["trajectory"]["timesteps"].count(t) > 1
    ]
    assert repeated and f"Timestep {repeated[0]:g} shows twice: the scheduler calls the model twice" in page


def test_report_fits_a_laptop_window_with_its_wide_tables_scrolling_in_place(sd15_study):
    folder, _ = sd15_study
    with headless_chromium() as browser:
        page = browser.new_page(viewport={"width": 1024, "height": 800})
        page.goto((folder / "report.html").as_uri())
        assert page.evaluate("document.documentElement.scrollWidth") <= 1024
        # the sweep table (a column per knob and per metric) is all there, to scroll to
        widest = page.evaluate("Math.max(...[...document.querySelectorAll('table')].map(t => t.scrollWidth))")
        assert widest > 1024 - 2 * 32  # wider than the page's text column: the case this guards


def test_refine_comparison_says_which_seeds_had_no_face(sd15_study):
    folder, record = sd15_study
    refine = record["refine"]
    assert refine["seeds"] == [0, 1] and refine["applied"] == 0
    assert all(not row["applied"] and "no face" in row["reason"] for row in refine["rows"])
    assert all(row["after"] == row["before"] for row in refine["rows"])
    assert (folder / "refine" / "seed-1-after.png").is_file()
    assert "Face-detail pass: before and after" in (folder / "report.html").read_text()


def test_refine_comparison_on_a_real_face_with_the_tiny_model(tiny_sd15):
    """A real photo stands in for a render (the tiny model draws no face): the pass is
    applied and changes the face; measured after it, the tiny model's random VAE has left
    no face to measure, which the record says (None) instead of inventing a change."""
    from diffusers import DiffusionPipeline

    from headshot.pipelines.refine import FaceRefiner, RefineOptions
    from headshot.samples import grace_hopper
    from headshot.study import refine_compare
    from headshot.study.artifacts import artifact_metrics

    pipe = DiffusionPipeline.from_pretrained(tiny_sd15)
    pipe.set_progress_bar_config(disable=True)
    refiner = FaceRefiner(pipe, 64, RefineOptions(enabled=True))
    photo = grace_hopper().crop((0, 44, 512, 556))
    metrics = artifact_metrics(None)
    call = {"prompt": "a photo of sks woman", "num_inference_steps": 4, "guidance_scale": 5.0}
    renders = {3: photo, 4: Image.new("RGB", (512, 512), "grey")}
    record, images = refine_compare.compare(renders, refiner, call, metrics)
    face, blank = record["rows"]
    assert face["applied"] and not blank["applied"] and record["applied"] == 1
    assert images["refine/seed-3-after"].tobytes() != photo.tobytes()
    assert face["before"]["skin_texture"] is not None and face["after"]["skin_texture"] is None
    assert record["mean_change"]["skin_texture"] is None


def test_refine_comparison_reports_the_mean_change_of_each_metric():
    """The comparison's arithmetic on a pass that really changes a face: skin smoothing
    (the plastic-skin manipulation) stands in for the face-detail pass."""
    from headshot.analysis.manipulations import manipulated
    from headshot.samples import grace_hopper
    from headshot.study import refine_compare
    from headshot.study.artifacts import artifact_metrics

    class Smoothing:
        def settings(self):
            return {"strength": 1.0}

        def refine(self, image, call, seed):
            return manipulated(image, "smooth_skin", 1.0), {"applied": True, "crop_box": [0, 0, 1, 1]}

    photo = grace_hopper().crop((0, 44, 512, 556))
    metrics = artifact_metrics(None)
    record, _ = refine_compare.compare({0: photo, 1: photo.rotate(5)}, Smoothing(), {}, metrics)
    changes = [row["after"]["skin_texture"] - row["before"]["skin_texture"] for row in record["rows"]]
    assert all(change < -0.1 for change in changes)  # smoother skin: less fine texture
    assert record["mean_change"]["skin_texture"] == pytest.approx(sum(changes) / 2)


def test_study_of_an_sdxl_base_model_from_the_command_line(run_cli, tiny_sdxl, tmp_path):
    config = tmp_path / "study.yaml"
    config.write_text(
        yaml.safe_dump(
            {"steps": 2, "sweep": {"mode": "axes", "guidance_scales": [1.0, 4.0], "steps": [1, 2]}}
        )
    )
    result = run_cli(
        "study", "-m", tiny_sdxl, "--subject", "bo", "--outputs", tmp_path, "--tokens", "sks,hair",
        "--prompt", "a photo of sks person with hair", "--config", config,
    )  # fmt: skip
    assert result.code == 0, result.err
    folder = tmp_path / "bo" / "audit" / "study"
    record = json.loads((folder / "study.json").read_text())
    assert record["family"] == "sdxl" and record["lora"] is None
    # Euler (the SDXL scheduler) returns its own x0: one frame per step.
    assert record["trajectory"]["frames"] == 2
    assert Image.open(folder / "trajectory.png").size == (2 * 64, 64)
    with np.load(folder / "attention.npz") as data:
        assert data["maps"].shape == (2, 8, 8)
    # axes: guidance 1 and 4 at 2 steps, then 1 step at guidance 7 (the study's own), no LoRA knobs
    assert set(record["sweep"]["knobs"]) == {"guidance_scale", "steps"}
    points = {(e["guidance_scale"], e["steps"]) for e in record["sweep"]["entries"]}
    assert points == {(1.0, 2), (4.0, 2), (7.0, 1), (7.0, 2)}
