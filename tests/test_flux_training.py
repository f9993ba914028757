"""FLUX training: the flow-matching loss by hand, the ComfyUI file, resume, bf16, 2 processes.

The hand computation uses diffusers' own FLUX helpers (latent packing, image ids, the
scheduler's resolution-dependent time shift) on a fixed batch, so it checks headshot's
objective against the reference implementation's math, not against itself.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

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

FLUX = get_family("flux")


@pytest.fixture(scope="module")
def trained(tiny_flux, tmp_path_factory):
    """A real FLUX LoRA: prior preservation, face-mask loss, accumulation, checkpoints."""
    root = tmp_path_factory.mktemp("flux-run")
    dataset = make_dataset(root / "outputs", "flux", count=4)
    options = fast_options(steps=6, checkpoint_steps=3, gradient_accumulation=2, max_sequence_length=32,
                           lora_dropout=0.1, lr=1e-2, tensorboard=True, validation_steps=3)  # fmt: skip
    config = FinetuneConfig(base_model=str(tiny_flux), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    return dataset, config, record


def test_flow_matching_loss_equals_a_hand_computation_on_a_fixed_batch(tiny_flux):
    from diffusers import FluxPipeline
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    config = FinetuneConfig(base_model="unused", timestep_sampling="resolution_shift", logit_mean=0.3,
                            logit_std=0.7, training_guidance=3.5, max_sequence_length=32)  # fmt: skip
    with torch.no_grad():
        prompts = FLUX.encode_prompt(
            FLUX.text_encoders(pipe), FLUX.tokenize(pipe, "a photo of sks person", config), "cpu"
        )
        latents = torch.randn(2, 16, 8, 8, generator=torch.Generator().manual_seed(3))
        masks = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
        batch = Batch(
            latents, masks, torch.zeros(2, 0), prompts.repeat(2), num_instance=1, noise_seeds=[7, 8]
        )
        objective = FLUX.training_objective(pipe, config)
        settings = LossSettings(prior_loss_weight=0.5, face_loss_weight=2.0, guidance=3.5)
        loss, instance, prior = dreambooth_loss(FLUX, pipe.transformer, objective, batch, settings)

        # By hand: each example's draws from its own seed, noise first, then its timestep.
        noise, u = [], []
        for seed in (7, 8):
            generator = torch.Generator().manual_seed(seed)
            noise.append(torch.randn(latents.shape[1:], generator=generator))
            u.append(torch.sigmoid(torch.randn(1, generator=generator) * 0.7 + 0.3))
        noise, u = torch.stack(noise), torch.cat(u)
        scheduler = pipe.scheduler.config
        mu = calculate_shift(16, scheduler.base_image_seq_len, scheduler.max_image_seq_len,
                             scheduler.base_shift, scheduler.max_shift)  # fmt: skip
        sigma = pipe.scheduler.time_shift(mu, 1.0, u)  # exp(mu) / (exp(mu) + (1/u - 1))
        assert torch.allclose(sigma, math.exp(mu) / (math.exp(mu) + (1 / u - 1)))
        s = sigma.view(-1, 1, 1, 1)
        noisy = (1 - s) * latents + s * noise
        velocity = pipe.transformer(
            hidden_states=FluxPipeline._pack_latents(noisy, 2, 16, 8, 8),
            timestep=sigma,
            guidance=torch.full((2,), 3.5),
            pooled_projections=prompts.pooled.repeat(2, 1),
            encoder_hidden_states=prompts.hidden.repeat(2, 1, 1),
            txt_ids=torch.zeros(32, 3),
            img_ids=FluxPipeline._prepare_latent_image_ids(2, 4, 4, "cpu", torch.float32),
        ).sample
        velocity = FluxPipeline._unpack_latents(velocity, 64, 64, 8)
        error = (velocity - (noise - latents)) ** 2
        weights = 1 + (2.0 - 1) * masks
        per_example = (error * weights).mean(dim=(1, 2, 3)) / weights.mean(dim=(1, 2, 3))
    torch.testing.assert_close(instance, per_example[0])
    torch.testing.assert_close(prior, per_example[1])
    torch.testing.assert_close(loss, per_example[0] + 0.5 * per_example[1])


def test_timestep_sampling_modes_draw_what_they_say():
    from headshot.training.objectives import FlowMatchingObjective

    def draw(mode, latent_hw):
        return FlowMatchingObjective(mode, 0.0, 1.0).sigmas(
            20000, latent_hw, torch.Generator().manual_seed(0)
        )

    uniform, logit = draw("uniform", (8, 8)), draw("logit_normal", (8, 8))
    small, large = draw("resolution_shift", (32, 32)), draw("resolution_shift", (128, 128))
    assert abs(float(uniform.mean()) - 0.5) < 0.01 and abs(float(uniform.std()) - 12**-0.5) < 0.01
    assert abs(float(logit.median()) - 0.5) < 0.01 and float(logit.std()) < float(uniform.std())
    # 1024 px (64x64 patches, 4096 tokens) shifts towards noise more than 256 px (256 tokens) does.
    assert 0.5 < float(small.median()) < float(large.median())
    assert abs(float(large.median()) - math.exp(1.15) / (math.exp(1.15) + 1)) < 0.01


def test_flux_run_records_the_family_and_writes_both_lora_files(trained):
    dataset, config, record = trained
    lora = dataset.parent / "lora"
    assert record.family == "flux" and record.steps == 6 and record.num_class_images == 4
    assert record.kohya_file == "comfyui/ada.safetensors"
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    assert len(list((lora / "logs").glob("events.out.tfevents.*"))) == 1
    assert {p.name for p in (lora / "samples").glob("*.png")} == {
        "step-000003_seed-0.png",
        "step-000006_seed-0.png",
    }
    keys = load_file(lora / "pytorch_lora_weights.safetensors").keys()
    assert all(key.startswith("transformer.") and ".lora_" in key for key in keys)


def _comfyui_flux_targets(depth: int, single_depth: int, hidden: int) -> dict[str, int | None]:
    """The diffusers module names ComfyUI maps for FLUX LoRAs, derived as ComfyUI's
    `flux_to_diffusers` table does (double blocks: separate q/k/v onto slices of a fused qkv;
    single blocks: q/k/v and proj_mlp onto slices of linear1), with each slice's rows (None:
    the whole weight). ComfyUI then accepts `lora_transformer_<name with _>` for each."""
    targets: dict[str, int | None] = {}
    for index in range(depth):
        block = f"transformer_blocks.{index}"
        for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
            targets[f"{block}.attn.{name}"] = hidden
        for name in ("attn.to_out.0", "attn.to_add_out", "norm1.linear", "norm1_context.linear",
                     "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2"):  # fmt: skip
            targets[f"{block}.{name}"] = None
    for index in range(single_depth):
        block = f"single_transformer_blocks.{index}"
        for name in ("to_q", "to_k", "to_v"):
            targets[f"{block}.attn.{name}"] = hidden
        targets[f"{block}.proj_mlp"] = hidden * 4
        targets[f"{block}.norm.linear"] = None
        targets[f"{block}.proj_out"] = None
    for name in ("proj_out", "x_embedder", "context_embedder", "norm_out.linear"):
        targets[name] = None
    for embedder in ("timestep_embedder", "text_embedder", "guidance_embedder"):
        for linear in ("linear_1", "linear_2"):
            targets[f"time_text_embed.{embedder}.{linear}"] = None
    return {"lora_transformer_" + name.replace(".", "_"): rows for name, rows in targets.items()}


@pytest.mark.parametrize("layers", ["attention", "all"])
def test_comfyui_file_names_only_modules_comfyui_maps(tiny_flux, tmp_path, layers):
    from diffusers import FluxPipeline

    from headshot.training.adapters import add_lora_adapters
    from headshot.training.export_flux import save_comfyui_lora

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    add_lora_adapters(pipe, FinetuneConfig(base_model="unused", rank=4, lora_layers=layers), 0, FLUX)
    out = save_comfyui_lora(pipe, tmp_path / "comfy.safetensors")
    config = pipe.transformer.config
    hidden = config.num_attention_heads * config.attention_head_dim
    targets = _comfyui_flux_targets(config.num_layers, config.num_single_layers, hidden)
    with safe_open(str(out), framework="pt") as handle:
        metadata, names = handle.metadata(), set(handle.keys())
        modules = {name.split(".")[0] for name in names}
        assert modules and modules <= set(targets), sorted(modules - set(targets))[:3]
        for module in modules:
            down, up = (
                handle.get_tensor(f"{module}.lora_down.weight"),
                handle.get_tensor(f"{module}.lora_up.weight"),
            )
            assert down.shape[0] == up.shape[1] == 4 and float(handle.get_tensor(f"{module}.alpha")) == 4
            if targets[module] is not None:
                assert up.shape[0] == targets[module], module
    assert names == {
        f"{m}.{part}" for m in modules for part in ("lora_down.weight", "lora_up.weight", "alpha")
    }
    assert metadata["ss_base_model_version"] == "flux1"
    expected = 8 * config.num_layers + 3 * config.num_single_layers  # attention projections
    if layers == "all":
        expected += 4 * config.num_layers + config.num_single_layers  # feed-forwards, proj_mlp
    assert len(modules) == expected


def test_resumed_flux_run_equals_the_uninterrupted_run(trained, tmp_path):
    import shutil

    dataset, config, _ = trained
    straight = load_file(dataset.parent / "lora" / "pytorch_lora_weights.safetensors")
    copy = shutil.copytree(dataset, tmp_path / "again" / "ada" / "dataset")
    assert finetune_dataset(copy, config.model_copy(update={"stop_after_steps": 4})) is None
    finetune_dataset(copy, config, resume=True)
    resumed = load_file(copy.parent / "lora" / "pytorch_lora_weights.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_flux_options_it_cannot_use_stop_before_the_model_loads(tiny_flux, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux", count=2)
    for option, value in (("snr_gamma", 5.0), ("noise_offset", 0.1), ("train_text_encoder", True)):
        config = FinetuneConfig(base_model=str(tiny_flux), **fast_options(**{option: value}))
        with pytest.raises(HeadshotError, match=f"option '{option}'.*flux"):
            finetune_dataset(dataset, config)
    assert not (dataset.parent / "lora").exists()


def test_bf16_with_gradient_checkpointing_trains_flux(tiny_flux, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux", count=2)
    options = fast_options(
        steps=2,
        mixed_precision="bf16",
        gradient_checkpointing=True,
        prior_preservation=False,
        max_sequence_length=16,
    )
    record = finetune_dataset(dataset, FinetuneConfig(base_model=str(tiny_flux), **options))
    assert record.steps == 2 and math.isfinite(record.final_loss)
    assert record.config["mixed_precision"] == "bf16"


def test_two_processes_train_one_flux_lora(tiny_flux, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", "flux", count=4)
    config = tmp_path / "finetune.yaml"
    options = fast_options(steps=2, checkpoint_steps=2, gradient_accumulation=2, max_sequence_length=16)
    config.write_text(yaml.safe_dump({**options, "cache_dir": str(tmp_path / "cache")}))
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "headshot", "finetune", str(dataset), "-m", str(tiny_flux), "--config", str(config),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    result = subprocess.run(launch, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_training_record(dataset.parent / "lora")
    assert record.num_processes == 2 and record.family == "flux"
    assert result.stderr.replace("\n", " ").count("LoRA written to") == 1


def test_killed_flux_run_resumed_equals_the_uninterrupted_run(tiny_flux, tmp_path):
    import shutil
    import signal
    import time

    source = make_dataset(tmp_path / "straight", "flux", count=3)
    options = fast_options(steps=30, checkpoint_steps=3, lora_dropout=0.1, gradient_accumulation=2, lr=1e-2,
                           max_sequence_length=16, cache_dir=str(tmp_path / "cache"))  # fmt: skip
    config_file = tmp_path / "finetune.yaml"
    config_file.write_text(yaml.safe_dump({**options, "base_model": str(tiny_flux)}))
    config = FinetuneConfig(**yaml.safe_load(config_file.read_text()))
    finetune_dataset(source, config)
    straight = load_file(source.parent / "lora" / "pytorch_lora_weights.safetensors")

    killed = shutil.copytree(source, tmp_path / "killed" / "ada" / "dataset")
    shutil.rmtree(killed.parent / "lora", ignore_errors=True)
    checkpoints = killed.parent / "lora" / "checkpoints"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "headshot", "finetune", str(killed), "--config", str(config_file)]
    process = subprocess.Popen(command, env=environment, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (checkpoints / "step-000006").is_dir():
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed.parent / "lora" / "training.json").exists(), "killed before the end"
    finetune_dataset(killed, config, resume=True)
    resumed = load_file(killed.parent / "lora" / "pytorch_lora_weights.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
