"""FLUX.2 [klein] through the later stages: every shipped template renders and is delivered
signed, the study records x0 and joint-attention maps at the chat-templated token positions,
prepare crops at 1024 px for the base model (the face pass: tests/test_refine.py), and
`headshot demo --family flux2-klein` runs."""

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
def klein_lora(tiny_flux2_klein, tmp_path_factory):
    root = tmp_path_factory.mktemp("klein-stages") / "outputs"
    dataset = make_dataset(root, "flux2-klein", count=3)
    options = fast_options(
        steps=8, lr=2e-2, checkpoint_steps=4, max_sequence_length=64, prior_preservation=False
    )
    config = FinetuneConfig(base_model=str(tiny_flux2_klein), cache_dir=root / "cache", **options)
    finetune_dataset(dataset, config)
    return dataset.parent / "lora"


def test_every_shipped_template_renders_on_klein_and_is_delivered_signed(klein_lora):
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
    index = json.loads(generate(klein_lora, config).read_text())
    names = shipped_template_names()
    renders = klein_lora.parent / "renders"
    klein = get_family("flux2-klein")
    for item in load_templates(names):
        sidecars = list((renders / item.name).glob("*.json"))
        assert sidecars, item.name
        for sidecar in sidecars:
            record = json.loads(sidecar.read_text())
            sampler, _, guidance = item.template.settings_for(klein)
            assert record["family"] == "flux2-klein" and record["sampler"] == sampler == "flow_euler"
            assert record["guidance"] == guidance == 4.0 and record["negative_prompt"] is None
            assert record["max_sequence_length"] == 64  # the LoRA's training prompt length
            with Image.open(sidecar.with_suffix(".png")) as image:
                assert image.size == (64, 64)
    delivered = [klein_lora.parent / c["delivered"] for c in index["candidates"] if c["delivered"]]
    assert len(delivered) == len(names)  # top_k 1 per template
    anchors = [klein_lora.parent.parent / "keys" / "dev-ca.pem"]
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=anchors)
        assert verification.state == "Trusted" and verification.ai_generated, headshot


def test_klein_study_has_x0_from_the_velocity_and_joint_attention_maps(
    klein_lora, tiny_flux2_klein, tmp_path
):
    from transformers import AutoTokenizer

    from headshot.analysis.study.config import load_study_config
    from headshot.analysis.study.run import run_study

    config = load_study_config(
        None, lora=klein_lora, out=tmp_path / "study", steps=3, sheet_columns=3, guidance_scale=4.0,
        tokens=["{identifier}", "earrings", "hair"],
        sweep={"guidance_scales": [1.0, 4.0], "steps": [2], "lora_scales": [0.0, 1.0]},
    )  # fmt: skip
    folder = run_study(config)
    record = json.loads((folder / "study.json").read_text())
    assert record["family"] == "flux2-klein"
    trajectory = record["trajectory"]
    assert trajectory["frames"] == 3
    sheet = np.asarray(Image.open(folder / "trajectory.png").convert("RGB"), dtype=np.float64)
    final = np.asarray(Image.open(folder / "final.png").convert("RGB"), dtype=np.float64)
    # The last step goes to sigma 0, so its x0 (x - sigma v), un-normalised and unpatchified by
    # the family, decodes to the delivered image; the first does not.
    assert np.abs(sheet[:, 128:192] - final).mean() < 1.0
    assert np.abs(sheet[:, :64] - final).mean() > 2.0

    with np.load(folder / "attention.npz") as data:
        maps, per_step, words = data["maps"], data["per_step"], list(data["words"])
    assert words == ["sks", "earrings", "hair"]
    assert maps.shape == (3, 8, 8) and per_step.shape == (3, 3, 8, 8)
    assert not np.allclose(maps[0], maps[1])
    # Positions are in the chat-templated sequence the transformer sees: "<|im_start|>", "user",
    # "\n" (user is spelled in letters: u, s, e, r), then "a professional headshot photo of sks".
    positions = {t["word"]: t["positions"] for t in record["attention"]["tokens"]}
    tokenizer = AutoTokenizer.from_pretrained(tiny_flux2_klein / "tokenizer")
    prompt = record["prompt"]
    templated = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    ids = tokenizer(templated).input_ids
    assert [tokenizer.convert_ids_to_tokens(ids[p]) for p in positions["sks"]] == ["Ġsks"]
    # LoRA scale 0 (the base model) once, scale 1 per checkpoint: 2 guidance x 1 steps x (1 + 2)
    assert len(record["sweep"]["entries"]) == 2 * 1 * (1 + 2)


def test_prepare_takes_the_klein_base_preset_at_its_native_1024_px(run_cli, sample_selfies, tmp_path):
    outputs = tmp_path / "outputs"
    # `run` first checks that the model can be had (offline here: it stops before any stage
    # writes, tests/test_run_preflight.py); prepare alone needs only the preset's family and size.
    result = run_cli("prepare", sample_selfies, "-s", "ada", "-m", "flux2-klein-base", "--outputs", outputs)
    assert "prepare: ada (flux2-klein, 1024px)" in result.out + result.err
    dataset = json.loads((outputs / "ada" / "dataset" / "dataset.json").read_text())
    assert dataset["family"] == "flux2-klein" and dataset["resolution"] == 1024
    assert result.code == 1 and "Add more photos" in result.err


def test_finetune_on_the_klein_preset_offline_is_a_clear_error(run_cli, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux2-klein", count=2)
    result = run_cli("finetune", dataset, "-m", "flux2-klein-base")
    assert result.code == 1 and "Traceback" not in result.err
    assert "base model 'flux2-klein-base' not found" in result.err
    assert "tiny-model --family flux2-klein" in result.err


def test_demo_on_the_tiny_klein_model_delivers_disclosed_headshots(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))
    outputs = tmp_path / "outputs"
    result = run_cli("demo", "--family", "flux2-klein", "--outputs", outputs)
    assert result.code == 0, result.err
    subject = outputs / "demo"
    index_file = outputs / "models" / "tiny-flux2-klein" / "model_index.json"
    assert json.loads(index_file.read_text())["_class_name"] == "Flux2KleinPipeline"
    assert json.loads((subject / "lora" / "training.json").read_text())["family"] == "flux2-klein"
    assert (subject / "lora" / "comfyui" / "demo.safetensors").is_file()
    index = json.loads((subject / "headshots" / "index.json").read_text())
    delivered = [subject / c["delivered"] for c in index["candidates"] if c["delivered"]]
    assert delivered
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=[outputs / "keys" / "dev-ca.pem"])
        assert verification.state == "Trusted" and verification.ai_generated
    study = json.loads((subject / "audit" / "study" / "study.json").read_text())
    assert study["family"] == "flux2-klein"
