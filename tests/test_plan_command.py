"""`headshot plan`: training and rendering memory for any model, offline, before downloading it."""

from __future__ import annotations

import json
import shutil

import pytest


def _plan(run_cli, *args):
    result = run_cli("plan", *args, "--json")
    assert result.code == 0, result.err[-2000:]
    return json.loads(result.out)


@pytest.fixture(scope="module")
def klein_plans():
    """The preset planned three ways, in one process (each plan builds the model on meta)."""
    from headshot.plan import PlanRequest, make_plan

    def plan(**options):
        return make_plan(PlanRequest(model="flux2-klein-base", resolution=1024, device="cuda", **options))

    return plan(), plan(gradient_checkpointing=True), plan(quantize_base="int8")


def test_a_preset_is_planned_offline_from_the_shipped_configs_with_its_parts(klein_plans):
    plan = klein_plans[0]
    assert plan["family"] == "flux2-klein" and "shipped full-size configs" in plan["from"]
    for stage in ("training", "render"):
        assert isinstance(plan[stage]["peak_gib"], float)
        parts = plan[stage]["parts"]
        assert parts["activations"] > 0 and all(isinstance(v, float) for v in parts.values())
        assert plan[stage]["peak_gib"] >= max(parts.values())
    # klein 4B in bf16: 3.88 B transformer parameters, 4.02 B in its Qwen3 encoder
    assert plan["training"]["parts"]["weights.transformer"] == pytest.approx(3.876e9 * 2 / 2**30, rel=0.01)
    assert plan["training"]["parts"]["weights.text_encoder"] == pytest.approx(4.022e9 * 2 / 2**30, rel=0.01)


def test_checkpointing_lowers_the_activations_and_int8_the_denoiser_weights(klein_plans):
    plain, checkpointed, int8 = klein_plans
    assert checkpointed["training"]["parts"]["activations"] < plain["training"]["parts"]["activations"] / 4
    assert checkpointed["training"]["peak_gib"] < plain["training"]["peak_gib"]
    weights = "weights.transformer"
    assert int8["training"]["parts"][weights] < 0.6 * plain["training"]["parts"][weights]
    assert int8["render"]["parts"][weights] < 0.6 * plain["render"]["parts"][weights]
    assert (
        int8["training"]["parts"]["weights.text_encoder"]
        == plain["training"]["parts"]["weights.text_encoder"]
    )


def test_the_text_output_names_each_part(run_cli):
    result = run_cli("plan", "-m", "flux2-klein-base", "--resolution", "512")
    assert result.code == 0, result.err
    assert "training: peak" in result.out and "render: peak" in result.out
    assert "activations" in result.out and "--gradient-checkpointing" in result.out


def test_a_model_on_disk_is_planned_from_its_own_files(run_cli, tiny_flux2_klein, tmp_path, monkeypatch):
    plan = _plan(run_cli, "-m", str(tiny_flux2_klein), "--device", "cpu")
    assert plan["from"].startswith("the model's files") and plan["resolution"] == 64
    assert plan["training"]["parts"]["activations"] > 0
    # a hub id found in the Hugging Face cache: its cached files, not the shipped configs
    snapshot = (
        tmp_path / "hub" / "models--black-forest-labs--FLUX.2-klein-base-4B" / "snapshots" / ("cd" * 20)
    )
    shutil.copytree(tiny_flux2_klein, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("cd" * 20)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    cached = _plan(run_cli, "-m", "black-forest-labs/FLUX.2-klein-base-4B", "--device", "cpu")
    assert cached["from"].startswith("the cached download") and cached["resolution"] == 64


def test_a_model_it_cannot_know_is_one_clear_error(run_cli):
    result = run_cli("plan", "-m", "studio/unknown-model")
    assert result.code == 1 and "Traceback" not in result.err
    assert "studio/unknown-model" in result.err and "no shipped full-size configs" in result.err
    bad = run_cli("plan", "-m", "flux2-klein-base", "--resolution", "1000")
    assert bad.code == 1 and "multiple of 16" in bad.err
