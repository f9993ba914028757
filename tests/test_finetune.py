"""`headshot finetune` on the tiny models: trains, exports files plain diffusers loads, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from finetune_support import fast_options, make_dataset

from headshot.training.training_record import read_training_record

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


@pytest.fixture(scope="module")
def sd15_dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("outputs"), "sd15")


def _latents(pipe, prompt: str = "a photo of sks person") -> torch.Tensor:
    out = pipe(
        prompt,
        num_inference_steps=3,
        height=64,
        width=64,
        output_type="latent",
        generator=torch.Generator().manual_seed(0),
    )
    return out.images


def _plain_diffusers(model):
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_cli_trains_sd15_and_plain_diffusers_loads_both_exports(run_cli, tiny_sd15, sd15_dataset, tmp_path):
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump({**fast_options(steps=50), "cache_dir": str(tmp_path / "cache")}))
    result = run_cli(
        "finetune", sd15_dataset, "-m", tiny_sd15, "--config", config,
        "--steps", "4", "--validation-steps", "2", "--checkpoint-steps", "2", "--class-noun", "woman",
    )  # fmt: skip
    assert result.code == 0, result.err
    lora = sd15_dataset.parent / "lora"
    record = read_training_record(lora)
    # The CLI overrides the YAML (50 steps there), which overrides the defaults.
    assert record.steps == 4 and record.config["steps"] == 4 and record.config["rank"] == 4
    assert record.identifier == "sks" and record.class_noun == "woman"
    assert record.instance_prompt == "a photo of sks woman" and record.class_prompt == "a photo of woman"
    assert record.family == "sd15" and record.resolution == 64
    # A local model is recorded relative to the subject folder (no absolute path) and found again.
    assert (
        Path(record.base_model).resolve() == Path(tiny_sd15).resolve() and len(record.base_model_sha256) == 64
    )
    raw = json.loads((lora / "training.json").read_text())["base_model"]
    assert raw.startswith("../") and str(tiny_sd15.parent) not in (lora / "training.json").read_text()
    assert record.num_instance_images == 8 and record.num_class_images == 4
    assert record.final_loss is not None and np.isfinite(record.final_loss)
    assert record.versions["diffusers"] and record.wall_time_s > 0
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    samples = json.loads((lora / "samples" / "samples.json").read_text())
    assert [(s["step"], s["seed"]) for s in samples] == [(2, 0), (4, 0)]
    # Random-weight models draw no faces; that is recorded, not faked.
    assert all(s["face"] is False and s["likeness_distance"] is None for s in samples)
    assert (lora / "samples" / "step-000004_seed-0.png").is_file()

    pipe = _plain_diffusers(tiny_sd15)
    base = _latents(pipe)
    pipe.load_lora_weights(lora)  # the folder, unmodified: diffusers finds the file itself
    with_lora = _latents(pipe)
    assert (with_lora - base).abs().mean() > 1e-3, "the LoRA must change the output"
    pipe.unload_lora_weights()
    assert torch.equal(_latents(pipe), base)
    pipe.load_lora_weights(lora / "kohya", weight_name=f"{record.subject}.safetensors")
    torch.testing.assert_close(_latents(pipe), with_lora, rtol=1e-4, atol=1e-4)


def test_sdxl_with_text_encoder_lora_and_every_loss_option(tiny_sdxl, tmp_path):
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    dataset = make_dataset(tmp_path / "outputs", "sdxl", count=4)
    options = fast_options(
        steps=3, train_text_encoder=True, gradient_checkpointing=True, gradient_accumulation=2,
        noise_offset=0.05, snr_gamma=5.0, face_loss_weight=3.0, lora_dropout=0.1, alpha=8,
        lr_scheduler="cosine", lr_warmup_steps=1,
    )  # fmt: skip
    config = FinetuneConfig(base_model=str(tiny_sdxl), cache_dir=tmp_path / "cache", **options)
    record = finetune_dataset(dataset, config)
    assert record.family == "sdxl" and record.train_text_encoder and record.lora_alpha == 8

    from safetensors import safe_open

    with safe_open(str(dataset.parent / "lora" / record.lora_file), "pt") as handle:
        prefixes = {key.split(".")[0] for key in handle.keys()}
    assert prefixes == {"unet", "text_encoder", "text_encoder_2"}, "SDXL: both text encoders"
    with safe_open(str(dataset.parent / "lora" / record.kohya_file), "pt") as handle:
        kohya_prefixes = {key.split("_")[0] + "_" + key.split("_")[1] for key in handle.keys()}
    assert kohya_prefixes == {"lora_unet", "lora_te1", "lora_te2"}

    pipe = _plain_diffusers(tiny_sdxl)
    base = _latents(pipe)
    pipe.load_lora_weights(dataset.parent / "lora")
    with_lora = _latents(pipe)
    assert (with_lora - base).abs().mean() > 1e-3
    pipe.unload_lora_weights()
    pipe.load_lora_weights(dataset.parent / "lora" / "kohya", weight_name="ada.safetensors")
    torch.testing.assert_close(_latents(pipe), with_lora, rtol=1e-4, atol=1e-4)


def test_lora_on_all_unet_layers_in_bf16_loads_completely(tiny_sd15, sd15_dataset, tmp_path):
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    dataset = shutil.copytree(sd15_dataset, tmp_path / "bea" / "dataset")
    config = FinetuneConfig(
        base_model=str(tiny_sd15), cache_dir=tmp_path / "cache",
        **fast_options(steps=2, unet_lora_layers="all", prior_preservation=False, mixed_precision="bf16"),
    )  # fmt: skip
    record = finetune_dataset(dataset, config)
    assert record.num_class_images == 0 and record.config["mixed_precision"] == "bf16"
    from safetensors.torch import load_file

    saved = load_file(dataset.parent / "lora" / record.lora_file)
    assert any(".conv1." in key for key in saved) and any(".to_q." in key for key in saved)
    pipe = _plain_diffusers(tiny_sd15)
    pipe.load_lora_weights(dataset.parent / "lora")
    from peft.tuners.lora import LoraLayer

    adapted = [m for m in pipe.unet.modules() if isinstance(m, LoraLayer)]
    assert 2 * len(adapted) == len(saved), "every saved LoRA pair is loaded into the UNet"


def test_class_images_are_cached_and_reused_across_runs(tiny_sd15, sd15_dataset, tmp_path):
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    cache = tmp_path / "cache"

    def run(count: int):
        config = FinetuneConfig(
            base_model=str(tiny_sd15), cache_dir=cache, **fast_options(steps=1, num_class_images=count)
        )
        finetune_dataset(sd15_dataset, config)
        return {p.name: p.stat().st_mtime_ns for p in cache.rglob("0*.png")}

    first = run(2)
    (folder,) = (cache / "class_images").iterdir()
    assert sorted(first) == ["00000.png", "00001.png"]
    settings = json.loads((folder / "settings.json").read_text())
    assert settings["prompt"] == "a photo of person" and settings["resolution"] == 64
    second = run(3)
    assert {name: second[name] for name in first} == first, "cached images are reused, not re-rendered"
    assert sorted(second) == ["00000.png", "00001.png", "00002.png"], "only the missing one is rendered"


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: (shutil.rmtree(d), d.mkdir()), "empty"),
        (lambda d: (d / "dataset.json").unlink(), "no dataset.json"),
        (lambda d: (d / "dataset.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "images" / "hopper_02_mirror.png").unlink(), "missing file images/hopper_02"),
        (lambda d: (d / "masks" / "hopper_03_crop_tight.png").write_bytes(b"junk"), "not a readable image"),
    ],
    ids=["empty", "no-json", "corrupt-json", "missing-photo", "corrupt-mask"],
)
def test_broken_datasets_give_clear_errors(run_cli, sd15_dataset, tiny_sd15, tmp_path, break_it, message):
    dataset = shutil.copytree(sd15_dataset, tmp_path / "cy" / "dataset")
    break_it(dataset)
    result = run_cli("finetune", dataset, "-m", tiny_sd15)
    assert result.code == 1
    assert message in result.err and str(dataset) in result.err
    assert "Traceback" not in result.err


def test_family_mismatch_and_bad_options_are_clear_errors(run_cli, sd15_dataset, tiny_sdxl, tmp_path):
    result = run_cli("finetune", sd15_dataset, "-m", tiny_sdxl)
    assert result.code == 1
    assert "prepared for sd15" in result.err and "is sdxl" in result.err
    result = run_cli("finetune", sd15_dataset, "-m", "sdxl")  # the preset: caught before any download
    assert result.code == 1 and "prepared for sd15" in result.err
    config = tmp_path / "bad.yaml"
    config.write_text("lr: fast\n")
    result = run_cli("finetune", sd15_dataset, "--config", config)
    assert result.code == 1 and f"{config}: field 'lr': expected a number" in result.err
    result = run_cli("finetune", tmp_path / "nowhere")
    assert result.code == 1 and "dataset folder not found" in result.err


def test_shipped_configs_are_valid():
    from headshot.config import configs_root, load_config
    from headshot.training.finetune_config import FinetuneConfig

    for path in [
        configs_root() / "finetune.yaml",
        configs_root() / "demo" / "finetune.yaml",
        *(configs_root() / "training").glob("*.yaml"),
    ]:
        load_config(FinetuneConfig, path)
    assert load_config(FinetuneConfig, configs_root() / "finetune.yaml") == FinetuneConfig()


def test_run_workflow_trains_then_continues_or_restarts_when_the_dataset_changed(tiny_sd15, tmp_path, capsys):
    from headshot.dataset_record import read_dataset
    from headshot.workflow import RunConfig, run_finetune

    dataset = make_dataset(tmp_path / "outputs", "sd15", count=3)
    config_file = tmp_path / "finetune.yaml"
    config_file.write_text(yaml.safe_dump({**fast_options(steps=3), "cache_dir": str(tmp_path / "cache")}))
    run = RunConfig(
        photos=tmp_path, subject="ada", base_model=str(tiny_sd15), outputs=tmp_path / "outputs",
        finetune_config=config_file,
    )  # fmt: skip
    run_finetune(run, run.layout)
    first = read_training_record(run.layout.lora)
    assert first.steps == 3 and first.num_instance_images == 3

    run_finetune(run, run.layout)  # same inputs: continues the finished run, only re-exports
    assert "resuming from" in capsys.readouterr().err
    assert read_training_record(run.layout.lora).lora_sha256 == first.lora_sha256

    record = read_dataset(dataset)
    record.photos = record.photos[1:]  # prepare ran again with one photo fewer
    (dataset / "dataset.json").write_text(record.model_dump_json())
    run_finetune(run, run.layout)
    assert "settings changed" in capsys.readouterr().err.replace("\n", "")
    again = read_training_record(run.layout.lora)
    assert again.num_instance_images == 2 and again.dataset_sha256 != first.dataset_sha256


def test_validation_scores_real_faces_against_the_dataset(sd15_dataset):
    """The likeness path the tiny models never reach: real photos of the subject and of another person."""
    from headshot.analysis.likeness import SubjectIdentity
    from headshot.dataset_record import read_dataset
    from headshot.samples import astronaut, grace_hopper
    from headshot.training.validation import score_sample

    identity = SubjectIdentity.from_dataset(read_dataset(sd15_dataset))
    subject = score_sample(grace_hopper(), identity)
    assert subject.face and subject.same_person and subject.likeness_distance < 0.6
    other = score_sample(astronaut(), identity)
    assert other.face and not other.same_person and other.likeness_distance > subject.likeness_distance
    from PIL import Image

    blank = score_sample(Image.new("RGB", (64, 64), (128, 128, 128)), identity)
    assert not blank.face and blank.likeness_distance is None
