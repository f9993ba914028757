"""Rendering: determinism per seed, the LoRA's effect, resume after a real interruption."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from headshot.errors import HeadshotError
from headshot.pipelines.generate_config import GenerateConfig
from headshot.pipelines.render import load_renderer
from headshot.pipelines.templates import expand_grid, load_templates
from headshot.training.training_record import read_training_record
from tests.generate_support import (
    generate_args,
    pixels,
    subject_copy,
    subprocess_env,
    write_template,
)

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


@pytest.fixture
def sd15_subject(tmp_path, tmp_path_factory, tiny_sd15):
    return subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")


@pytest.fixture
def sdxl_subject(tmp_path, tmp_path_factory, tiny_sdxl):
    return subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sdxl, "sdxl")


def _arrays(images) -> list[np.ndarray]:
    return [np.asarray(image, dtype=np.int16) for image in images]


@pytest.mark.parametrize("family", ["sd15", "sdxl"])
def test_pixels_depend_only_on_seed_and_template_not_on_the_batch(family, request, tmp_path):
    layout = request.getfixturevalue(f"{family}_subject")
    template = write_template(tmp_path, "scene", sampler="euler_a", variations={"colour": ["navy"]})
    no_lora = write_template(
        tmp_path, "no-lora", sampler="euler_a", variations={"colour": ["navy"]}, lora_scale=0.0
    )
    renderer = load_renderer(layout.lora, read_training_record(layout.lora), GenerateConfig(), "cpu")
    jobs = {job.seed: job for job in expand_grid(load_templates([str(template)]), [5, 7, 9])}

    (alone,) = _arrays(renderer.render([jobs[5]]))
    batch = _arrays(renderer.render([jobs[7], jobs[5], jobs[9]]))
    (again,) = _arrays(renderer.render([jobs[5]]))
    assert np.array_equal(alone, again)
    # Same seed in another batch: identical up to float rounding (at most 1 of 255).
    assert np.abs(alone - batch[1]).max() <= 1
    assert np.abs(alone - batch[0]).mean() > 5  # another seed is another image

    (base_only,) = _arrays(renderer.render(expand_grid(load_templates([str(no_lora)]), [5])))
    assert np.abs(alone - base_only).mean() > 1  # the subject's LoRA changes the image
    assert alone.shape == (64, 64, 3)  # the model's native size when the template names none
    assert torch.is_grad_enabled(), "rendering must not switch autograd off for the whole process"


def test_rerun_skips_finished_candidates_and_redoes_damaged_or_changed_ones(sd15_subject, tmp_path, run_cli):
    layout = sd15_subject
    template = write_template(tmp_path, "scene")
    args = generate_args(layout, template, seeds=2, batch_size=3)
    assert run_cli(*args).code == 0
    scene = layout.renders / "scene"
    pngs = sorted(scene.glob("*.png"))
    assert [p.name for p in pngs] == ["navy-0.png", "navy-1.png", "white-0.png", "white-1.png"]
    sidecar = json.loads((scene / "navy-1.json").read_text())
    assert sidecar["seed"] == 1 and sidecar["prompt"] == "photo of sks person, wearing a navy shirt"
    assert sidecar["negative_prompt"] == "plastic skin" and sidecar["sampler"] == "euler"
    assert {"steps", "guidance", "lora_scale", "base_model_sha256", "lora_sha256", "wall_time_s"} <= set(
        sidecar
    )
    stamps = {p.name: p.stat().st_mtime_ns for p in scene.iterdir()}

    assert run_cli(*args).code == 0
    assert {p.name: p.stat().st_mtime_ns for p in scene.iterdir()} == stamps  # nothing redone

    (scene / "navy-0.json").unlink()  # as if killed between the PNG and its sidecar
    (scene / "white-1.png").write_bytes(b"\x89PNG truncated")  # damaged image
    first_pixels = pixels(scene / "navy-0.png")
    assert run_cli(*args).code == 0
    redone = {p.name for p in scene.iterdir() if stamps.get(p.name) != p.stat().st_mtime_ns}
    assert redone == {"navy-0.png", "navy-0.json", "white-1.png", "white-1.json"}
    # Re-rendered in a batch of two instead of three: the same picture up to float rounding.
    assert np.abs(pixels(scene / "navy-0.png") - first_pixels).max() <= 1

    edited = write_template(tmp_path, "scene", steps=2)  # a changed template is rendered anew
    assert run_cli(*generate_args(layout, edited, seeds=2)).code == 0
    assert all(json.loads(p.read_text())["steps"] == 2 for p in scene.glob("*.json"))


def test_killed_run_resumes_without_duplicates_or_half_written_files(
    sd15_subject, tmp_path, tmp_path_factory, tiny_sd15, run_cli
):
    layout = sd15_subject
    template = write_template(tmp_path, "scene", steps=8, variations={"colour": ["navy", "white", "black"]})
    args = generate_args(layout, template, seeds=8, batch_size=1)
    process = subprocess.Popen(
        [sys.executable, "-m", "headshot", *args], env=subprocess_env(), stderr=subprocess.DEVNULL
    )
    scene = layout.renders / "scene"
    deadline = time.monotonic() + 120
    while len(list(scene.glob("*.json"))) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = {p.name: p.stat().st_mtime_ns for p in scene.glob("*.json")}
    assert 3 <= len(finished_before) < 24, "the run must be killed part-way to test resuming"

    result = run_cli(*args)
    assert result.code == 0, result.err
    names = sorted(p.name for p in scene.iterdir())
    expected = sorted(
        f"{c}-{s}.{ext}" for c in ("navy", "white", "black") for s in range(8) for ext in ("png", "json")
    )
    assert names == expected  # every candidate once, no temporary leftovers
    for name, stamp in finished_before.items():
        assert (scene / name).stat().st_mtime_ns == stamp  # finished work was kept, not redone
    index = json.loads((layout.headshots / "index.json").read_text())
    assert index["counts"]["candidates"] == 24

    # The killed-and-resumed renders are the pictures an uninterrupted run makes, pixel for pixel.
    whole = subject_copy(
        tmp_path / "uninterrupted", tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15"
    )
    assert run_cli(*generate_args(whole, template, seeds=8, batch_size=1)).code == 0
    for png in sorted(scene.glob("*.png")):
        assert np.array_equal(pixels(png), pixels(whole.renders / "scene" / png.name)), png.name
    uninterrupted = json.loads((whole.headshots / "index.json").read_text())
    assert [c["key"] for c in index["candidates"] if c["delivered"]] == [
        c["key"] for c in uninterrupted["candidates"] if c["delivered"]
    ]


def test_ctrl_c_says_what_is_kept_and_the_same_command_continues(
    sd15_subject, tmp_path, run_cli, monkeypatch
):
    # A real SIGINT (headshot.storage.fault_point) as one render is written (issue 25).
    template = write_template(tmp_path, "scene")
    args = generate_args(sd15_subject, template, seeds=2, batch_size=1)
    monkeypatch.chdir(tmp_path)  # paths inside the current folder are shown relative to it
    monkeypatch.setenv("HEADSHOT_FAULT", "int:white-0.png")
    result = run_cli(*args)
    assert result.code == 130, result.err
    done = len(list((sd15_subject.renders / "scene").glob("*.json")))
    assert 0 < done < 4
    assert f"interrupted: {done} finished renders in outputs/ada/renders (a re-run skips them)" in result.err
    assert f"continue with: headshot {' '.join(args)}" in result.err
    monkeypatch.delenv("HEADSHOT_FAULT")
    result = run_cli(*args)
    assert result.code == 0
    assert len(list((sd15_subject.renders / "scene").glob("*.json"))) == 4
    # The result on stdout, progress on stderr.
    assert result.out == "headshots in outputs/ada/headshots (index: outputs/ada/headshots/index.json)\n"


def test_max_images_stops_early_and_the_next_run_continues(sd15_subject, tmp_path, run_cli):
    layout = sd15_subject
    template = write_template(tmp_path, "scene")
    result = run_cli(*generate_args(layout, template, seeds=2, max_images=3))
    assert result.code == 0 and "run the same command again" in result.err
    assert len(list((layout.renders / "scene").glob("*.json"))) == 3
    assert not (layout.headshots / "index.json").exists()  # ranking waits for the whole grid
    assert run_cli(*generate_args(layout, template, seeds=2)).code == 0
    assert len(list((layout.renders / "scene").glob("*.json"))) == 4
    assert (layout.headshots / "index.json").is_file()


def test_base_model_and_lora_must_be_the_ones_training_json_names(sd15_subject, tmp_path, run_cli):
    layout = sd15_subject
    template = write_template(tmp_path, "scene")
    training = layout.lora / "training.json"
    original = json.loads(training.read_text())
    training.write_text(json.dumps({**original, "base_model_sha256": "f" * 64}))
    result = run_cli(*generate_args(layout, template, seeds=1))
    assert result.code == 1 and "training.json" in result.err and "fingerprint" in result.err
    assert not layout.renders.exists()

    warn = tmp_path / "warn.yaml"
    warn.write_text("base_model_mismatch: warn\n")
    result = run_cli(*generate_args(layout, template, seeds=1, config=warn))
    assert result.code == 0 and "rendering anyway" in result.err

    training.write_text(json.dumps({**original, "lora_sha256": "0" * 64}))
    result = run_cli(*generate_args(layout, template, seeds=1))
    assert result.code == 1 and "pytorch_lora_weights.safetensors" in result.err and "changed" in result.err


def test_bad_inputs_are_clear_errors(sd15_subject, tmp_path, run_cli):
    template = write_template(tmp_path, "scene")
    result = run_cli("generate", str(tmp_path / "nowhere"))
    assert result.code == 1 and "nowhere: lora folder not found" in result.err
    bad = write_template(tmp_path / "bad", "evil", name="../evil")
    result = run_cli(*generate_args(sd15_subject, bad))
    assert result.code == 1 and "evil.yaml: field 'name'" in result.err and "Traceback" not in result.err
    (sd15_subject.dataset / "dataset.json").unlink()
    result = run_cli(*generate_args(sd15_subject, template))
    assert result.code == 1 and "no dataset.json" in result.err
    with pytest.raises(HeadshotError, match="fp16 needs a CUDA GPU"):
        config = GenerateConfig.model_validate({"performance": {"dtype": "fp16"}})
        load_renderer(sd15_subject.lora, read_training_record(sd15_subject.lora), config, "cpu")


def test_memory_options_keep_the_picture(sd15_subject, tmp_path):
    """Sliced attention changes how memory is used, not what is drawn; VAE tiling really
    decodes tile by tile and keeps the picture up to its tiles' seams; bf16 renders too;
    CPU offload without a GPU is a clear error."""
    # 128 px: twice the tiny VAE's 64 px tile (its sample_size), so tiling splits the 16x16
    # latent into overlapping tiles of at most 8x8 (at 64 px it would decode in one piece).
    template = write_template(tmp_path, "scene", size=128, variations={"colour": ["navy"]})
    record = read_training_record(sd15_subject.lora)
    templates = load_templates([str(template)])

    def render(seeds=(4,), **performance):
        jobs = expand_grid(templates, list(seeds))
        config = GenerateConfig.model_validate({"performance": performance})
        renderer = load_renderer(sd15_subject.lora, record, config, "cpu")
        decoded = []  # the latent (height, width) of every pass through the VAE's decoder
        renderer.pipeline.vae.decoder.register_forward_hook(
            lambda module, inputs, output: decoded.append(tuple(inputs[0].shape[-2:]))
        )
        return _arrays(renderer.render(jobs)), decoded

    (default, other_seed), whole = render(seeds=(4, 5))
    assert whole == [(16, 16)] and default.shape == (128, 128, 3)
    (sliced,), _ = render(attention="sliced")
    assert np.abs(sliced - default).max() <= 1
    (tiled,), tiles = render(vae_tiling=True)
    assert tiles == [(8, 8), (8, 8), (8, 4)] * 2 + [(4, 8), (4, 8), (4, 4)], tiles

    def correlation(a, b) -> float:
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    # Each tile is normalised and attended to on its own, so on this tiny random VAE (8x8-latent
    # tiles; a real one's are 64x64) the seams show: measured correlation 0.63 with the whole
    # decode of the same seed, against 0.23 between two seeds; mean differences 24 and 37 of 255.
    assert np.abs(tiled - default).max() > 0
    assert correlation(tiled, default) > correlation(default, other_seed) + 0.25
    assert render(dtype="bf16")[0][0].shape == default.shape
    with pytest.raises(HeadshotError, match="cpu_offload: needs a CUDA GPU"):
        render(cpu_offload="model")
