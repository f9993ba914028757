"""The flow-matching families through the later stages, the same tests for each (tests/flow_cases.py):
every shipped template renders at the trained prompt length and is delivered signed, the study
records x0 from the velocity and joint-attention maps at the family's token positions, prepare
crops at 1024 px for the real model's preset, finetune on that preset offline is a clear error,
and `headshot demo --family <family>` runs. Then FLUX.1's own: class images, validation samples
and renders are drawn at the trained prompt length (klein's face pass: tests/test_refine.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from finetune_support import fast_options, make_dataset
from flow_cases import CASE
from PIL import Image

from headshot.families import get_family
from headshot.signing.api import verify_file
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


@pytest.fixture(scope="module")
def lora(flow_case, flow_model, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"{flow_case.name}-stages") / "outputs"
    dataset = make_dataset(root, flow_case.name, count=3)
    options = fast_options(steps=8, lr=2e-2, checkpoint_steps=4, **flow_case.stage_options)
    finetune_dataset(dataset, FinetuneConfig(base_model=str(flow_model), cache_dir=root / "cache", **options))
    return dataset.parent / "lora"


def test_every_shipped_template_renders_and_is_delivered_signed(flow_case, lora):
    from headshot.pipelines.generate import generate
    from headshot.pipelines.generate_config import GenerateConfig
    from headshot.pipelines.templates import load_templates, shipped_template_names

    config = GenerateConfig(
        seeds=[0],
        steps=2,
        batch_size=4,
        ranking={"top_k": 1, "require_face": False, "max_relative_distance": None},
    )
    index = json.loads(generate(lora, config).read_text())
    names = shipped_template_names()
    renders = lora.parent / "renders"
    family = get_family(flow_case.name)
    for item in load_templates(names):
        sidecars = list((renders / item.name).glob("*.json"))
        assert sidecars, item.name
        for sidecar in sidecars:
            record = json.loads(sidecar.read_text())
            sampler, _, guidance = item.template.settings_for(family)
            assert record["family"] == flow_case.name and record["sampler"] == sampler == "flow_euler"
            assert record["guidance"] == guidance == flow_case.template_guidance
            assert record["negative_prompt"] is None
            # the LoRA's training prompt length
            assert record["max_sequence_length"] == flow_case.stage_options["max_sequence_length"]
            with Image.open(sidecar.with_suffix(".png")) as image:
                assert image.size == (64, 64)
    delivered = [lora.parent / c["delivered"] for c in index["candidates"] if c["delivered"]]
    assert len(delivered) == len(names)  # top_k 1 per template
    anchors = [lora.parent.parent / "keys" / "dev-ca.pem"]
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=anchors)
        assert verification.state == "Trusted" and verification.ai_generated, headshot


def test_the_study_has_x0_from_the_velocity_and_joint_attention_maps(flow_case, lora, flow_model, tmp_path):
    from headshot.study.config import load_study_config
    from headshot.study.run import run_study

    guidance = flow_case.study_guidance
    config = load_study_config(
        None, lora=lora, out=tmp_path / "study", steps=3, sheet_columns=3, guidance_scale=guidance,
        tokens=["{identifier}", "earrings", "hair"],
        sweep={"guidance_scales": [1.0, guidance], "steps": [2], "lora_scales": [0.0, 1.0]},
    )  # fmt: skip
    folder = run_study(config)
    record = json.loads((folder / "study.json").read_text())
    assert record["family"] == flow_case.name
    trajectory = record["trajectory"]
    assert trajectory["frames"] == 3 and trajectory["timesteps"] == sorted(
        trajectory["timesteps"], reverse=True
    )
    sheet = np.asarray(Image.open(folder / "trajectory.png").convert("RGB"), dtype=np.float64)
    final = np.asarray(Image.open(folder / "final.png").convert("RGB"), dtype=np.float64)
    # The last step goes to sigma 0, so its x0 (x - sigma v, brought to the VAE's layout by the
    # family) decodes to the delivered image; the first does not.
    assert np.abs(sheet[:, 128:192] - final).mean() < 1.0
    assert np.abs(sheet[:, :64] - final).mean() > 2.0

    with np.load(folder / "attention.npz") as data:
        maps, per_step, words = data["maps"], data["per_step"], list(data["words"])
    assert words == ["sks", "earrings", "hair"]
    assert maps.shape == (3, 8, 8) and per_step.shape == (3, 3, 8, 8)  # words x latent grid; per step
    assert np.allclose(maps.min(axis=(1, 2)), 0) and np.allclose(maps.max(axis=(1, 2)), 1)
    assert not np.allclose(maps[0], maps[1])
    positions = {t["word"]: t["positions"] for t in record["attention"]["tokens"]}
    flow_case.check_sks_positions(flow_model, record["prompt"], positions["sks"])
    # guidance x steps x (LoRA scale 0, the base model, once + scale 1 per checkpoint:
    # finetune's step-000004 and the final LoRA)
    assert len(record["sweep"]["entries"]) == 2 * 1 * (1 + 2)
    assert {e["checkpoint"] for e in record["sweep"]["entries"]} == {"step-000004", "final"}


def test_prepare_takes_the_preset_at_its_native_1024_px(flow_case, run_cli, sample_selfies, tmp_path):
    outputs = tmp_path / "outputs"
    # `run` first checks that the model can be had (offline here: it stops before any stage
    # writes, tests/test_run_preflight.py); prepare alone needs only the preset's family and size.
    result = run_cli("prepare", sample_selfies, "-s", "ada", "-m", flow_case.preset, "--outputs", outputs)
    assert f"prepare: ada ({flow_case.name}, 1024px)" in result.out + result.err
    dataset = json.loads((outputs / "ada" / "dataset" / "dataset.json").read_text())
    assert dataset["family"] == flow_case.name and dataset["resolution"] == 1024
    # The bundled sample photos are too small to crop at 1024 px without upscaling: prepare says so.
    assert result.code == 1 and "Add more photos" in result.err
    assert {p["reason_code"] for p in dataset["photos"]} >= {"too_small"}


def test_finetune_on_the_preset_offline_is_a_clear_error(flow_case, run_cli, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", flow_case.name, count=2)
    result = run_cli("finetune", dataset, "-m", flow_case.preset)
    assert result.code == 1 and "Traceback" not in result.err
    assert f"base model '{flow_case.preset}' not found" in result.err
    assert f"tiny-model --family {flow_case.name}" in result.err


def test_demo_on_the_tiny_model_delivers_disclosed_headshots(flow_case, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))
    outputs = tmp_path / "outputs"
    result = run_cli("demo", "--family", flow_case.name, "--outputs", outputs)
    assert result.code == 0, result.err
    subject = outputs / "demo"
    index_file = outputs / "models" / f"tiny-{flow_case.name}" / "model_index.json"
    assert json.loads(index_file.read_text())["_class_name"] == flow_case.pipeline_class
    assert json.loads((subject / "lora" / "training.json").read_text())["family"] == flow_case.name
    assert (subject / "lora" / "comfyui" / "demo.safetensors").is_file()
    index = json.loads((subject / "headshots" / "index.json").read_text())
    delivered = [subject / c["delivered"] for c in index["candidates"] if c["delivered"]]
    assert delivered
    for headshot in delivered:
        verification = verify_file(headshot, trust_anchors=[outputs / "keys" / "dev-ca.pem"])
        assert verification.state == "Trusted" and verification.ai_generated
    assert json.loads((subject / "audit" / "study" / "study.json").read_text())["family"] == flow_case.name


# --- FLUX.1's own: everything is drawn at the trained prompt length -------------------------


@pytest.fixture(scope="module")
def draw(tiny_flux):
    """draw(prompt, tokens, steps, guidance, lora=None): the pipeline's own seed-0 render."""
    import torch
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    pipe.set_progress_bar_config(disable=True)

    def render(prompt: str, tokens: int, steps: int, guidance: float, lora=None) -> np.ndarray:
        if lora is not None:
            pipe.load_lora_weights(lora)
        generator = torch.Generator("cpu").manual_seed(0)
        image = pipe(prompt=prompt, max_sequence_length=tokens, num_inference_steps=steps,
                     guidance_scale=guidance, height=64, width=64, generator=generator).images[0]  # fmt: skip
        if lora is not None:
            pipe.unload_lora_weights()
        return np.asarray(image, dtype=np.int16)

    return render


def _same(path, drawn: np.ndarray) -> bool:
    """The PNG at `path` is `drawn`, float rounding aside."""
    with Image.open(path) as image:
        return np.abs(np.asarray(image.convert("RGB"), dtype=np.int16) - drawn).max() <= 1


FLUX_ONLY = pytest.mark.parametrize("flow_case", [CASE["flux"]], ids=["flux"], indirect=True)


@FLUX_ONLY
def test_class_images_are_drawn_with_the_familys_own_sampler_settings(flow_case, lora, draw):
    """No class sampler settings given: the class image is the base model's at FLUX.1's own 28
    steps and guidance 3.5 (not SD's 25 at 5.0), its prompt at the trained 32 tokens."""
    flux = get_family("flux")
    (class_image,) = (lora.parent.parent / "cache" / "class_images").glob("*/00000.png")
    assert _same(class_image, draw("a photo of person", 32, flux.default_steps, flux.default_guidance))


@FLUX_ONLY
def test_validation_samples_are_drawn_at_the_trained_prompt_length(flow_case, lora, draw):
    """`max_sequence_length: 32` is recorded in training.json, and the sample that chose the
    exported step is what the pipeline draws at 32 T5 tokens, not at its own 512."""
    from headshot.training.training_record import read_training_record

    record = read_training_record(lora)
    assert record.max_sequence_length == 32
    guidance = get_family("flux").default_guidance  # none given: the family's own
    sample = lora / "samples" / f"step-{record.steps:06d}_seed-0.png"  # 2 steps (fast_options)
    assert _same(sample, draw(record.instance_prompt, 32, 2, guidance, lora=lora))
    assert not _same(sample, draw(record.instance_prompt, 512, 2, guidance, lora=lora))


@FLUX_ONLY
def test_generate_renders_at_the_trained_prompt_length_and_records_it(flow_case, lora, draw):
    from headshot.pipelines.generate_config import GenerateConfig
    from headshot.pipelines.render import load_renderer, render_jobs
    from headshot.pipelines.templates import expand_grid, load_templates
    from headshot.training.training_record import read_training_record

    renderer = load_renderer(lora, read_training_record(lora), GenerateConfig(steps=2), "cpu")
    (job,) = expand_grid(load_templates(["studio-grey"]), [0])[:1]
    render_jobs(renderer, [job], lora.parent / "renders", batch_size=1, show_progress=False)
    candidate = lora.parent / "renders" / "studio-grey" / f"{job.stem}.png"
    sidecar = json.loads(candidate.with_suffix(".json").read_text())
    assert sidecar["max_sequence_length"] == 32 and sidecar["steps"] == 2
    prompt, guidance = sidecar["prompt"], sidecar["guidance"]
    assert _same(candidate, draw(prompt, 32, 2, guidance, lora=lora))
    assert not _same(candidate, draw(prompt, 512, 2, guidance, lora=lora))
