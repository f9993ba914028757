"""FLUX through the later stages: every shipped template renders and is delivered signed,
the study records x0 from the velocity and joint-attention maps, prepare crops at 1024 px
for FLUX.1-dev, `run -m flux-dev` is accepted, and `headshot demo --family flux` runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from finetune_support import fast_options, make_dataset
from PIL import Image

from headshot.signing.api import verify_file
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig


@pytest.fixture(scope="module")
def flux_lora(tiny_flux, tmp_path_factory):
    root = tmp_path_factory.mktemp("flux-stages") / "outputs"
    dataset = make_dataset(root, "flux", count=3)
    options = fast_options(
        steps=8, lr=2e-2, checkpoint_steps=4, max_sequence_length=64, prior_preservation=False
    )
    finetune_dataset(dataset, FinetuneConfig(base_model=str(tiny_flux), cache_dir=root / "cache", **options))
    return dataset.parent / "lora"


def test_every_shipped_template_renders_on_flux_and_is_delivered_signed(flux_lora):
    from headshot.families import get_family
    from headshot.pipelines.generate import generate
    from headshot.pipelines.generate_config import GenerateConfig
    from headshot.pipelines.templates import load_templates, shipped_template_names

    config = GenerateConfig(
        seeds=[0],
        steps=2,
        batch_size=4,
        ranking={"top_k": 1, "require_face": False, "max_relative_distance": None},
    )
    index = json.loads(generate(flux_lora, config).read_text())
    names = shipped_template_names()
    renders = flux_lora.parent / "renders"
    flux = get_family("flux")
    for item in load_templates(names):
        sidecars = list((renders / item.name).glob("*.json"))
        assert sidecars, item.name
        for sidecar in sidecars:
            record = json.loads(sidecar.read_text())
            sampler, _, guidance = item.template.settings_for(flux)
            assert record["family"] == "flux" and record["sampler"] == sampler == "flow_euler"
            assert record["guidance"] == guidance and record["negative_prompt"] is None
            with Image.open(sidecar.with_suffix(".png")) as image:
                assert image.size == (64, 64)
    delivered = [flux_lora.parent / c["delivered"] for c in index["candidates"] if c["delivered"]]
    assert len(delivered) == len(names)  # top_k 1 per template
    anchors = [flux_lora.parent.parent / "keys" / "dev-ca.pem"]
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=anchors)
        assert verification.state == "Trusted" and verification.ai_generated, headshot


def test_flux_study_has_x0_from_the_velocity_and_joint_attention_maps(flux_lora, tmp_path):
    from headshot.analysis.study.config import load_study_config
    from headshot.analysis.study.run import run_study

    config = load_study_config(
        None, lora=flux_lora, out=tmp_path / "study", steps=3, sheet_columns=3, guidance_scale=3.5,
        tokens=["{identifier}", "earrings", "hair"],
        sweep={"guidance_scales": [1.0, 3.5], "steps": [2], "lora_scales": [0.0, 1.0]},
    )  # fmt: skip
    folder = run_study(config)
    record = json.loads((folder / "study.json").read_text())
    assert record["family"] == "flux"
    trajectory = record["trajectory"]
    assert trajectory["frames"] == 3 and trajectory["timesteps"] == sorted(
        trajectory["timesteps"], reverse=True
    )
    sheet = np.asarray(Image.open(folder / "trajectory.png").convert("RGB"), dtype=np.float64)
    final = np.asarray(Image.open(folder / "final.png").convert("RGB"), dtype=np.float64)
    # The last step goes to sigma 0, so its x0 (x - sigma v) is the delivered image; the first is not.
    assert np.abs(sheet[:, 128:192] - final).mean() < 1.0
    assert np.abs(sheet[:, :64] - final).mean() > 2.0

    with np.load(folder / "attention.npz") as data:
        maps, per_step, words = data["maps"], data["per_step"], list(data["words"])
    assert words == ["sks", "earrings", "hair"]
    assert maps.shape == (3, 8, 8) and per_step.shape == (3, 3, 8, 8)  # words x latent grid; per step
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    assert not np.allclose(maps[0], maps[1])
    # Positions are T5's (no start token): "a professional headshot photo of sks" puts sks at 5.
    positions = {t["word"]: t["positions"] for t in record["attention"]["tokens"]}
    assert positions["sks"] == [5]
    # guidance x steps x (LoRA scale 0, the base model, once + scale 1 per checkpoint:
    # finetune's step-000004 and the final LoRA)
    assert len(record["sweep"]["entries"]) == 2 * 1 * (1 + 2)
    assert {e["checkpoint"] for e in record["sweep"]["entries"]} == {"step-000004", "final"}


def test_run_takes_flux_dev_and_prepares_at_its_native_1024_px(run_cli, sample_selfies, tmp_path):
    outputs = tmp_path / "outputs"
    result = run_cli("run", sample_selfies, "-s", "ada", "-m", "flux-dev", "--outputs", outputs)
    assert "prepare: ada (flux, 1024px)" in result.out
    dataset = json.loads((outputs / "ada" / "dataset" / "dataset.json").read_text())
    assert dataset["family"] == "flux" and dataset["resolution"] == 1024
    # The bundled sample photos are too small to crop at 1024 px without upscaling: prepare says so.
    assert result.code == 1 and "Add more photos" in result.err
    assert {p["reason_code"] for p in dataset["photos"]} >= {"too_small"}


def test_finetune_on_flux_dev_offline_is_a_clear_error(run_cli, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux", count=2)
    result = run_cli("finetune", dataset, "-m", "flux-dev")
    assert result.code == 1 and "Traceback" not in result.err
    assert "base model 'flux-dev' not found" in result.err and "tiny-model --family flux" in result.err


def test_demo_on_the_tiny_flux_model_delivers_disclosed_headshots(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))
    outputs = tmp_path / "outputs"
    result = run_cli("demo", "--family", "flux", "--outputs", outputs)
    assert result.code == 0, result.err
    subject = outputs / "demo"
    assert json.loads((outputs / "models" / "tiny-flux" / "model_index.json").read_text())["_class_name"] == (
        "FluxPipeline"
    )
    assert json.loads((subject / "lora" / "training.json").read_text())["family"] == "flux"
    assert (subject / "lora" / "comfyui" / "demo.safetensors").is_file()
    index = json.loads((subject / "headshots" / "index.json").read_text())
    delivered = [subject / c["delivered"] for c in index["candidates"] if c["delivered"]]
    assert delivered
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=[outputs / "keys" / "dev-ca.pem"])
        assert verification.state == "Trusted" and verification.ai_generated
    assert json.loads((subject / "audit" / "study" / "study.json").read_text())["family"] == "flux"
