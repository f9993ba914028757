"""A quantized frozen base: LoRA trained on int8/fp8 weights, exported as an ordinary LoRA.

What a user relies on: the LoRA trained against the quantized base loads with plain diffusers
into the unquantized base and changes its images; a resumed run is bit-identical; an option
that cannot run on this machine is one line before any model is loaded.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import yaml
from finetune_support import fast_options, make_dataset
from safetensors.torch import load_file

from headshot.errors import HeadshotError
from headshot.families import get_family
from headshot.quantize import check_quantization, quantized_modules
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

FAMILY_OPTIONS = {"flux": {"max_sequence_length": 32}, "sdxl": {}}


def _config(model, root, family, **overrides) -> FinetuneConfig:
    options = fast_options(**{**FAMILY_OPTIONS[family], **overrides})
    return FinetuneConfig(base_model=str(model), cache_dir=root / "cache", **options)


def _render(pipeline, family) -> torch.Tensor:
    kwargs = get_family(family).render_kwargs(["a photo of sks person"], None, 3.5)
    generator = torch.Generator("cpu").manual_seed(0)
    return pipeline(
        **kwargs, num_inference_steps=3, height=64, width=64, generator=generator, output_type="pt"
    ).images


@pytest.mark.parametrize("family", ["flux", "sdxl"])
def test_lora_trained_on_int8_base_loads_into_the_unquantized_base_and_changes_it(
    family, tiny_flux, tiny_sdxl, tmp_path
):
    import diffusers

    model = tiny_flux if family == "flux" else tiny_sdxl
    dataset = make_dataset(tmp_path / "q" / "outputs", family, count=3)
    record = finetune_dataset(dataset, _config(model, tmp_path, family, quantize_base="int8", lr=1e-2))
    assert record.quantize_base == "int8" and record.base_precision == "int8+fp32"
    lora_folder = dataset.parent / "lora"
    quantized_lora = load_file(lora_folder / record.lora_file)
    assert all(t.dtype == torch.float32 for t in quantized_lora.values())

    # The same run on the unquantized base learns other weights: the int8 base was really used.
    plain = make_dataset(tmp_path / "p" / "outputs", family, count=3)
    plain_record = finetune_dataset(plain, _config(model, tmp_path, family, lr=1e-2))
    assert plain_record.quantize_base == "none" and plain_record.base_precision == "fp32"
    plain_lora = load_file(plain.parent / "lora" / plain_record.lora_file)
    assert quantized_lora.keys() == plain_lora.keys()
    assert any(not torch.equal(quantized_lora[k], plain_lora[k]) for k in quantized_lora)

    # Plain diffusers, no headshot code: the unquantized base, then with the LoRA.
    pipeline = getattr(diffusers, get_family(family).pipeline_class_name).from_pretrained(model)
    pipeline.set_progress_bar_config(disable=True)
    assert quantized_modules(get_family(family).denoiser_of(pipeline)) == 0
    before = _render(pipeline, family)
    pipeline.load_lora_weights(str(lora_folder), weight_name=record.lora_file)
    after = _render(pipeline, family)
    assert (after - before).abs().mean() > 1e-3, "the LoRA does not change the unquantized base's output"


def test_quantized_base_is_really_quantized_when_loaded(tiny_flux):
    from headshot.models.loading import load_base_model
    from headshot.models.model_spec import resolve_base_model

    loaded = load_base_model(resolve_base_model(str(tiny_flux)), quantize_base="int8")
    transformer = loaded.pipeline.transformer
    assert quantized_modules(transformer) > 0
    assert quantized_modules(loaded.pipeline.text_encoder_2) == 0  # only the denoiser


def test_resume_with_a_quantized_base_is_bit_identical(tiny_flux, tmp_path):
    options = dict(quantize_base="int8", steps=6, checkpoint_steps=2, lora_dropout=0.1)
    straight = make_dataset(tmp_path / "a" / "outputs", "flux", count=3)
    finetune_dataset(straight, _config(tiny_flux, tmp_path, "flux", **options))
    expected = load_file(straight.parent / "lora" / "pytorch_lora_weights.safetensors")

    resumed = make_dataset(tmp_path / "b" / "outputs", "flux", count=3)
    config = _config(tiny_flux, tmp_path, "flux", **options)
    assert finetune_dataset(resumed, config.model_copy(update={"stop_after_steps": 3})) is None
    changed = config.model_copy(update={"quantize_base": "fp8"})
    with pytest.raises(
        HeadshotError, match=r"cannot resume with changed settings \(quantize_base: 'int8' -> 'fp8'\)"
    ):
        finetune_dataset(resumed, changed, resume=True)
    finetune_dataset(resumed, config, resume=True)
    got = load_file(resumed.parent / "lora" / "pytorch_lora_weights.safetensors")
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in got)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error of a machine without CUDA")
@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (["--quantize-base", "nf4"], "option 'quantize_base': nf4 needs a CUDA GPU and bitsandbytes"),
        (["--8bit-adam"], "option 'use_8bit_adam': needs a CUDA GPU and bitsandbytes"),
    ],
)
def test_an_option_that_cannot_run_here_is_one_line_before_any_loading(
    run_cli, tiny_flux, tmp_path, flag, message
):
    # Damaged weights: had the model been loaded, the error would be about them.
    model = shutil.copytree(tiny_flux, tmp_path / "model")
    (model / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    dataset = make_dataset(tmp_path / "outputs", "flux", count=3)
    config = tmp_path / "finetune.yaml"
    config.write_text(yaml.safe_dump(fast_options(cache_dir=str(tmp_path / "cache"))))
    result = run_cli("finetune", dataset, "-m", model, "--config", config, *flag)
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.err, result.err
    assert message in errors[0]
    assert not (dataset.parent / "lora").exists()


def test_a_missing_backend_names_the_option_and_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "torchao" else real(name))
    with pytest.raises(
        HeadshotError, match=r"option 'quantize_base': int8 needs torchao, not installed: pip"
    ):
        check_quantization("int8", "cpu")
    check_quantization("none", "cpu")  # nothing to check


def test_generate_renders_at_the_trained_precision_by_default_and_warns_at_another(
    run_cli, tiny_flux, tmp_path
):
    import json

    dataset = make_dataset(tmp_path / "outputs", "flux", count=3)
    finetune_dataset(
        dataset, _config(tiny_flux, tmp_path, "flux", quantize_base="int8", prior_preservation=False)
    )
    lora = dataset.parent / "lora"
    options = dict(
        templates=["studio-grey"], seeds=[0], steps=2,
        ranking={"top_k": 1, "require_face": False, "max_relative_distance": None, "audit": False},
    )  # fmt: skip
    config = tmp_path / "generate.yaml"
    config.write_text(yaml.safe_dump(options))
    result = run_cli("generate", lora, "--config", config)
    assert result.code == 0, result.err
    assert "memory plan: estimated peak" in result.err and "trained against" not in result.err
    sidecar = next((dataset.parent / "renders" / "studio-grey").glob("*.json"))
    assert json.loads(sidecar.read_text())["dtype"] == "int8+fp32"  # as the validation samples
    quantized = sidecar.with_suffix(".png").read_bytes()

    result = run_cli("generate", lora, "--config", config, "--quantize-base", "none")
    assert result.code == 0, result.err
    warning = " ".join(result.err.split())
    assert "the LoRA was trained against the base at int8+fp32; rendering at fp32" in warning
    assert json.loads(sidecar.read_text())["dtype"] == "fp32"  # rendered again, not reused
    assert sidecar.with_suffix(".png").read_bytes() != quantized
