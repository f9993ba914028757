"""Flow-matching training, the same tests for every flow family (tests/flow_cases.py): the loss
by hand with the family's own diffusers helpers, the run's records and files, resume, the
options a family cannot use, two processes; then each family's own: FLUX.1's timestep
sampling modes, bf16 and killed-run resume, FLUX.2 [klein]'s empirical shift, and each
family's ComfyUI file (its layout is the family's).

The hand computation uses the pipeline's own static helpers (latent packing and position ids,
the scheduler's resolution-dependent time shift) on a fixed batch, so it checks headshot's
objective against the reference implementation's math, not against itself.
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
from family_cases import CASES
from finetune_support import fast_options, make_dataset
from flow_cases import FLOW_CASES, flow_family_names, shift_of
from safetensors import safe_open
from safetensors.torch import load_file

from headshot.errors import HeadshotError
from headshot.families import get_family
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.training_record import read_training_record

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

FLUX = get_family("flux")
KLEIN = get_family("flux2-klein")
PROMPT = "a photo of sks person"


@pytest.fixture(scope="module")
def trained(flow_case, flow_model, tmp_path_factory):
    """A real LoRA: prior preservation, face-mask loss, accumulation, checkpoints, samples."""
    root = tmp_path_factory.mktemp(f"{flow_case.name}-run")
    dataset = make_dataset(root / "outputs", flow_case.name, count=4)
    options = fast_options(steps=6, checkpoint_steps=3, gradient_accumulation=2, max_sequence_length=32,
                           lora_dropout=0.1, lr=1e-2, validation_steps=3)  # fmt: skip
    options.update(flow_case.training_options)
    config = FinetuneConfig(base_model=str(flow_model), cache_dir=root / "cache", **options)
    record = finetune_dataset(dataset, config)
    return dataset, config, record


def test_every_flow_family_has_a_flow_case():
    assert [case.name for case in FLOW_CASES] == flow_family_names()


def test_flow_matching_loss_equals_a_hand_computation_with_the_pipelines_own_helpers(flow_case, flow_model):
    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    family, hand = get_family(flow_case.name), flow_case.hand
    pipe = flow_case.load(flow_model)
    config = FinetuneConfig(base_model="unused", timestep_sampling="resolution_shift", logit_mean=0.3,
                            logit_std=0.7, max_sequence_length=32, **flow_case.hand_options)  # fmt: skip
    with torch.no_grad():
        prompts = family.encode_prompt(
            family.text_encoders(pipe), family.tokenize(pipe, PROMPT, config), "cpu"
        )
        reference, _ = next(c for c in CASES if c.name == flow_case.name).reference_prompt_embeddings(
            pipe, PROMPT
        )
        torch.testing.assert_close(prompts.hidden, reference)
        latents = hand.latents(pipe, family)
        masks = torch.rand(2, 1, *latents.shape[-2:], generator=torch.Generator().manual_seed(4))
        batch = Batch(
            latents, masks, torch.zeros(2, 0), prompts.repeat(2), num_instance=1, noise_seeds=[7, 8]
        )
        objective = family.training_objective(pipe, config)
        settings = LossSettings(
            prior_loss_weight=0.5, face_loss_weight=2.0, guidance=config.training_guidance
        )
        loss, instance, prior = dreambooth_loss(family, pipe.transformer, objective, batch, settings)

        # By hand: each example's draws from its own seed, noise first, then its timestep.
        noise, u = [], []
        for seed in (7, 8):
            generator = torch.Generator().manual_seed(seed)
            noise.append(torch.randn(latents.shape[1:], generator=generator))
            u.append(torch.sigmoid(torch.randn(1, generator=generator) * 0.7 + 0.3))
        noise, u = torch.stack(noise), torch.cat(u)
        mu = hand.mu(pipe, 16)  # 16 image tokens
        sigma = pipe.scheduler.time_shift(mu, 1.0, u)
        assert torch.allclose(sigma, shift_of(mu, u))
        s = sigma.view(-1, 1, 1, 1)
        noisy = (1 - s) * latents + s * noise
        velocity = hand.velocity(pipe, noisy, sigma, prompts, PROMPT, config.training_guidance)
        error = (velocity - (noise - latents)) ** 2
        weights = 1 + (2.0 - 1) * masks
        per_example = (error * weights).mean(dim=(1, 2, 3)) / weights.mean(dim=(1, 2, 3))
    torch.testing.assert_close(instance, per_example[0])
    torch.testing.assert_close(prior, per_example[1])
    torch.testing.assert_close(loss, per_example[0] + 0.5 * per_example[1])


def test_a_run_records_the_family_and_writes_both_lora_files(flow_case, trained):
    dataset, config, record = trained
    lora = dataset.parent / "lora"
    assert record.family == flow_case.name and record.steps == 6 and record.num_class_images == 4
    assert record.kohya_file == "comfyui/ada.safetensors"
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["step-000003", "step-000006"]
    if config.tensorboard:
        assert len(list((lora / "logs").glob("events.out.tfevents.*"))) == 1
    assert {p.name for p in (lora / "samples").glob("*.png")} == {
        "step-000003_seed-0.png",
        "step-000006_seed-0.png",
    }
    keys = load_file(lora / "pytorch_lora_weights.safetensors").keys()
    assert all(key.startswith("transformer.") and ".lora_" in key for key in keys)


def test_a_resumed_run_equals_the_uninterrupted_run(trained, tmp_path):
    dataset, config, _ = trained
    straight = load_file(dataset.parent / "lora" / "pytorch_lora_weights.safetensors")
    copy = shutil.copytree(dataset, tmp_path / "again" / "ada" / "dataset")
    assert finetune_dataset(copy, config.model_copy(update={"stop_after_steps": 4})) is None
    finetune_dataset(copy, config, resume=True)
    resumed = load_file(copy.parent / "lora" / "pytorch_lora_weights.safetensors")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)


def test_options_a_family_cannot_use_stop_before_the_model_loads(flow_case, flow_model, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", flow_case.name, count=2)
    for option, value in flow_case.refused_options:
        config = FinetuneConfig(base_model=str(flow_model), **fast_options(**{option: value}))
        with pytest.raises(HeadshotError, match=f"option '{option}'.*{flow_case.name}"):
            finetune_dataset(dataset, config)
    assert not (dataset.parent / "lora").exists()


def test_two_processes_train_one_lora(flow_case, flow_model, tmp_path):
    dataset = make_dataset(tmp_path / "outputs", flow_case.name, count=4)
    config = tmp_path / "finetune.yaml"
    options = fast_options(steps=2, checkpoint_steps=2, gradient_accumulation=2, max_sequence_length=16,
                           **flow_case.two_processes)  # fmt: skip
    config.write_text(yaml.safe_dump({**options, "cache_dir": str(tmp_path / "cache")}))
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", options["mixed_precision"], "--dynamo_backend", "no",
        "-m", "headshot", "finetune", str(dataset), "-m", str(flow_model), "--config", str(config),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    result = subprocess.run(launch, env=environment, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    record = read_training_record(dataset.parent / "lora")
    assert record.num_processes == 2 and record.family == flow_case.name
    assert record.config["mixed_precision"] == options["mixed_precision"] and math.isfinite(record.final_loss)
    assert result.stderr.replace("\n", " ").count("LoRA written to") == 1


# --- FLUX.1's own ---------------------------------------------------------------------


def test_timestep_sampling_modes_draw_what_they_say():
    from headshot.families.objectives import FlowMatchingObjective

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
def test_flux_comfyui_file_names_only_modules_comfyui_maps(tiny_flux, tmp_path, layers):
    from diffusers import FluxPipeline

    from headshot.families.export_flux import save_comfyui_lora
    from headshot.training.adapters import add_lora_adapters

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


def test_killed_flux_run_resumed_equals_the_uninterrupted_run(tiny_flux, tmp_path):
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


# --- FLUX.2 [klein]'s own ----------------------------------------------------------------


def test_klein_shift_follows_flux2s_empirical_rule_not_flux1s():
    pipeline = SimpleNamespace(scheduler=SimpleNamespace(config={}))
    objective = KLEIN.training_objective(
        pipeline, FinetuneConfig(base_model="unused", timestep_sampling="resolution_shift")
    )
    from diffusers.pipelines.flux2.pipeline_flux2_klein import compute_empirical_mu

    from headshot.families.objectives import resolution_mu

    # 1024 px: 64x64 latent tokens once patchified (no further 2x2 packing), at the base's 50 steps.
    assert objective.mu(4096) == compute_empirical_mu(4096, 50)
    assert abs(objective.mu(4096) - resolution_mu(4096, 256, 4096, 0.5, 1.15)) > 0.5  # FLUX.1: 1.15
    draws = objective.sigmas(20000, (64, 64), torch.Generator().manual_seed(0))
    shift = math.exp(objective.mu(4096))
    assert abs(float(draws.median()) - shift / (shift + 1)) < 0.01


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


@pytest.mark.parametrize("layers", ["attention", "all"])
def test_klein_comfyui_file_is_the_lora_in_bfl_layout_as_diffusers_converter_maps_it(
    tiny_flux2_klein, tmp_path, layers
):
    """Each entry names a BFL module ComfyUI maps, and its weight change (up @ down) equals the
    diffusers modules' changes once diffusers' own BFL -> diffusers converter splits it."""
    from diffusers import Flux2KleinPipeline
    from diffusers.loaders.single_file_utils import convert_flux2_transformer_checkpoint_to_diffusers

    from headshot.families.export import peft_layers
    from headshot.families.export_flux2 import save_comfyui_flux2_lora
    from headshot.training.adapters import add_lora_adapters

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
