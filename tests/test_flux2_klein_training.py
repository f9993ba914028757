"""FLUX.2 [klein] training: the loss by hand with diffusers' own FLUX.2 helpers, the empirical
timestep shift, the ComfyUI file against diffusers' BFL converter, resume, 2 processes.

The hand computation uses the pipeline's own static helpers (2x2 patchify, batch-norm
normalisation, 4-axis position ids, packing and unpacking by ids, `compute_empirical_mu`) on
a fixed batch, so it checks headshot's objective against the reference implementation.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
import yaml
from finetune_support import fast_options, make_dataset
from safetensors import safe_open
from safetensors.torch import load_file

from headshot.errors import HeadshotError
from headshot.families import get_family
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.training_record import read_training_record

KLEIN = get_family("flux2-klein")


@pytest.fixture(scope="module")
def trained(tiny_flux2_klein, tmp_path_factory):
    """A real klein LoRA: prior preservation, face-mask loss, accumulation, checkpoints."""
    root = tmp_path_factory.mktemp("klein-run")
    dataset = make_dataset(root / "outputs", "flux2-klein", count=4)
    options = fast_options(steps=6, checkpoint_steps=3, gradient_accumulation=2, max_sequence_length=32,
                           lora_dropout=0.1, lr=1e-2, validation_steps=3)  # fmt: skip
    config = FinetuneConfig(base_model=str(tiny_flux2_klein), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    return dataset, config, record


def test_klein_loss_equals_a_hand_computation_with_the_pipelines_own_helpers(tiny_flux2_klein):
    from diffusers import Flux2KleinPipeline
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    pipe = Flux2KleinPipeline.from_pretrained(tiny_flux2_klein)
    config = FinetuneConfig(base_model="unused", timestep_sampling="resolution_shift", logit_mean=0.3,
                            logit_std=0.7, max_sequence_length=32)  # fmt: skip
    with torch.no_grad():
        prompts = KLEIN.encode_prompt(
            KLEIN.text_encoders(pipe), KLEIN.tokenize(pipe, "a photo of sks person", config), "cpu"
        )
        reference, text_ids = pipe.encode_prompt(
            "a photo of sks person", device="cpu", max_sequence_length=32
        )
        torch.testing.assert_close(prompts.hidden, reference)
        pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3)) * 2 - 1
        latents = KLEIN.encode_latents(pipe.vae, pixels)
        torch.testing.assert_close(latents, pipe._encode_vae_image(pixels, generator=None))
        masks = torch.rand(2, 1, 4, 4, generator=torch.Generator().manual_seed(4))
        batch = Batch(
            latents, masks, torch.zeros(2, 0), prompts.repeat(2), num_instance=1, noise_seeds=[7, 8]
        )
        objective = KLEIN.training_objective(pipe, config)
        settings = LossSettings(prior_loss_weight=0.5, face_loss_weight=2.0)
        loss, instance, prior = dreambooth_loss(KLEIN, pipe.transformer, objective, batch, settings)

        # By hand: each example's draws from its own seed, noise first, then its timestep.
        noise, u = [], []
        for seed in (7, 8):
            generator = torch.Generator().manual_seed(seed)
            noise.append(torch.randn(latents.shape[1:], generator=generator))
            u.append(torch.sigmoid(torch.randn(1, generator=generator) * 0.7 + 0.3))
        noise, u = torch.stack(noise), torch.cat(u)
        mu = compute_empirical_mu(image_seq_len=16, num_steps=50)  # 4x4 tokens; the base's 50 steps
        sigma = pipe.scheduler.time_shift(mu, 1.0, u)
        assert torch.allclose(sigma, math.exp(mu) / (math.exp(mu) + (1 / u - 1)))
        s = sigma.view(-1, 1, 1, 1)
        noisy = (1 - s) * latents + s * noise
        ids = Flux2KleinPipeline._prepare_latent_ids(noisy)
        velocity = pipe.transformer(
            hidden_states=Flux2KleinPipeline._pack_latents(noisy),
            timestep=sigma,
            guidance=None,
            encoder_hidden_states=prompts.hidden.repeat(2, 1, 1),
            txt_ids=text_ids.repeat(2, 1, 1),
            img_ids=ids,
        ).sample
        velocity = Flux2KleinPipeline._unpack_latents_with_ids(velocity, ids)
        error = (velocity - (noise - latents)) ** 2
        weights = 1 + (2.0 - 1) * masks
        per_example = (error * weights).mean(dim=(1, 2, 3)) / weights.mean(dim=(1, 2, 3))
    torch.testing.assert_close(instance, per_example[0])
    torch.testing.assert_close(prior, per_example[1])
    torch.testing.assert_close(loss, per_example[0] + 0.5 * per_example[1])


def test_klein_shift_follows_flux2s_empirical_rule_not_flux1s():
    pipeline = SimpleNamespace(scheduler=SimpleNamespace(config={}))
    objective = KLEIN.training_objective(
        pipeline, FinetuneConfig(base_model="unused", timestep_sampling="resolution_shift")
    )
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    from headshot.training.objectives import resolution_mu

    # 1024 px: 64x64 latent tokens once patchified (no further 2x2 packing), at the base's 50 steps.
    assert objective.mu(4096) == compute_empirical_mu(4096, 50)
    assert abs(objective.mu(4096) - resolution_mu(4096, 256, 4096, 0.5, 1.15)) > 0.5  # FLUX.1: 1.15
    draws = objective.sigmas(20000, (64, 64), torch.Generator().manual_seed(0))
    shift = math.exp(objective.mu(4096))
    assert abs(float(draws.median()) - shift / (shift + 1)) < 0.01


def test_klein_run_records_the_family_and_writes_both_lora_files(trained):
    dataset, config, record = trained
    lora = dataset.parent / "lora"
    assert record.family == "flux2-klein" and record.steps == 6 and record.num_class_images == 4
    assert record.kohya_file == "comfyui/ada.safetensors"
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    assert {p.name for p in (lora / "samples").glob("*.png")} == {
        "step-000003_seed-0.png",
        "step-000006_seed-0.png",
    }
    keys = load_file(lora / "pytorch_lora_weights.safetensors").keys()
    assert all(key.startswith("transformer.") and ".lora_" in key for key in keys)


def _bfl_targets(depth: int, single_depth: int, hidden: int, mlp: int) -> dict[str, int]:
    """BFL FLUX.2 module -> rows of its weight, for the modules a klein LoRA may touch: what
    ComfyUI's generic `lora_unet_<BFL name>` key map offers for this model."""
    rows = {}
    for index in range(depth):
        block = f"double_blocks.{index}"
        for stream in ("img", "txt"):
            rows[f"{block}.{stream}_attn.qkv"] = 3 * hidden
            rows[f"{block}.{stream}_attn.proj"] = hidden
            rows[f"{block}.{stream}_mlp.0"] = 2 * mlp
            rows[f"{block}.{stream}_mlp.2"] = hidden
    for index in range(single_depth):
        rows[f"single_blocks.{index}.linear1"] = 3 * hidden + 2 * mlp
        rows[f"single_blocks.{index}.linear2"] = hidden
    return {"lora_unet_" + name.replace(".", "_"): count for name, count in rows.items()}


@pytest.mark.parametrize("layers", ["attention", "all"])
def test_comfyui_file_is_the_lora_in_bfl_layout_as_diffusers_converter_maps_it(
    tiny_flux2_klein, tmp_path, layers
):
    """Each entry names a BFL module ComfyUI maps, and its weight change (up @ down) equals the
    diffusers modules' changes once diffusers' own BFL -> diffusers converter splits it."""
    from diffusers import Flux2KleinPipeline
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    from headshot.training.adapters import add_lora_adapters
    from headshot.training.export import peft_layers
    from headshot.training.export_flux2 import save_comfyui_flux2_lora

    pipe = Flux2KleinPipeline.from_pretrained(tiny_flux2_klein)
    add_lora_adapters(pipe, FinetuneConfig(base_model="unused", rank=4, lora_layers=layers), 0, KLEIN)
    with torch.no_grad():
        for name, parameter in pipe.transformer.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(5)))
    out = save_comfyui_flux2_lora(pipe, tmp_path / "comfy.safetensors", scale=2.0)
    config = pipe.transformer.config
    hidden = config.num_attention_heads * config.attention_head_dim
    targets = _bfl_targets(
        config.num_layers, config.num_single_layers, hidden, int(hidden * config.mlp_ratio)
    )
    bfl_deltas = {}
    with safe_open(str(out), framework="pt") as handle:
        modules = {name.split(".")[0] for name in handle.keys()}
        assert modules and modules <= set(targets), sorted(modules - set(targets))[:3]
        for module in modules:
            down, up = (
                handle.get_tensor(f"{module}.lora_down.weight"),
                handle.get_tensor(f"{module}.lora_up.weight"),
            )
            alpha = float(handle.get_tensor(f"{module}.alpha"))
            assert up.shape[0] == targets[module] and alpha == down.shape[0] == up.shape[1]
            bfl_name = next(k for k in _bfl_names(config) if "lora_unet_" + k.replace(".", "_") == module)
            bfl_deltas[f"{bfl_name}.weight"] = up @ down * (alpha / down.shape[0])
    converted = convert_flux2_transformer_checkpoint_to_diffusers(dict(bfl_deltas))
    trained = peft_layers(pipe, False, 2.0, denoiser="transformer")["transformer"]
    expected = {}
    for key, value in trained.items():
        module, _, part = key.rpartition(".lora_")
        expected.setdefault(module, {})[part] = value
    assert {k.removesuffix(".weight") for k in converted} == set(expected)
    for module, parts in expected.items():
        torch.testing.assert_close(converted[f"{module}.weight"], parts["B.weight"] @ parts["A.weight"])
    # Per double block: the two fused qkv and two projections (+ four MLP layers); per single: 2.
    per_double = {"attention": 4, "all": 8}[layers]
    assert len(modules) == per_double * config.num_layers + 2 * config.num_single_layers


def _bfl_names(config) -> list[str]:
    names = []
    for index in range(config.num_layers):
        for stream in ("img", "txt"):
            names += [
                f"double_blocks.{index}.{stream}_{part}"
                for part in ("attn.qkv", "attn.proj", "mlp.0", "mlp.2")
            ]
    for index in range(config.num_single_layers):
        names += [f"single_blocks.{index}.linear1", f"single_blocks.{index}.linear2"]
    return names


def test_resumed_klein_run_equals_the_uninterrupted_run(trained, tmp_path):
    dataset, config, _ = trained
    straight = load_file(dataset.parent / "lora" / "pytorch_lora_weights.safetensors")
    copy = shutil.copytree(dataset, tmp_path / "again" / "ada" / "dataset")
    assert finetune_dataset(copy, config.model_copy(update={"stop_after_steps": 4})) is None
    finetune_dataset(copy, config, resume=True)
    resumed = load_file(copy.parent / "lora" / "pytorch_lora_weights.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_klein_options_it_cannot_use_stop_before_the_model_loads(tiny_flux2_klein, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux2-klein", count=2)
    wrong = (
        ("snr_gamma", 5.0),
        ("noise_offset", 0.1),
        ("train_text_encoder", True),
        ("training_guidance", 3.5),
    )
    for option, value in wrong:
        config = FinetuneConfig(base_model=str(tiny_flux2_klein), **fast_options(**{option: value}))
        with pytest.raises(HeadshotError, match=f"option '{option}'.*flux2-klein"):
            finetune_dataset(dataset, config)
    assert not (dataset.parent / "lora").exists()


def test_two_processes_train_one_klein_lora_in_bf16(tiny_flux2_klein, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux2-klein", count=4)
    config = tmp_path / "finetune.yaml"
    options = fast_options(steps=2, checkpoint_steps=2, gradient_accumulation=2, max_sequence_length=16,
                           mixed_precision="bf16", gradient_checkpointing=True)  # fmt: skip
    config.write_text(yaml.safe_dump({**options, "cache_dir": str(tmp_path / "cache")}))
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
        "-m", "headshot", "finetune", str(dataset), "-m", str(tiny_flux2_klein), "--config", str(config),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    result = subprocess.run(launch, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_training_record(dataset.parent / "lora")
    assert record.num_processes == 2 and record.family == "flux2-klein"
    assert record.config["mixed_precision"] == "bf16" and math.isfinite(record.final_loss)
    assert result.stderr.replace("\n", " ").count("LoRA written to") == 1
