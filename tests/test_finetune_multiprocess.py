"""Data-parallel training under `accelerate launch` with 2 CPU processes.

`accelerate launch --cpu` starts a single process unless MPI is set up; `--multi_gpu`
starts N processes with torchrun, which on a machine without CUDA form a gloo group.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from finetune_support import fast_options, make_dataset

from headshot.training.training_record import read_training_record

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`


def _launch(processes: int, dataset, model, config) -> subprocess.CompletedProcess:
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "headshot", "finetune", str(dataset), "-m", str(model), "--config", str(config),
    ]  # fmt: skip
    if processes == 1:  # --multi_gpu wants 2 or more; one process is the plain command
        launch = [
            sys.executable,
            "-m",
            "headshot",
            "finetune",
            str(dataset),
            "-m",
            str(model),
            "--config",
            str(config),
        ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    return subprocess.run(launch, env=environment, capture_output=True, text=True, timeout=300)


def test_two_processes_train_one_lora_that_diffusers_loads(tiny_sdxl, tmp_path):
    # SDXL with both text encoders trained and gradient accumulation: the hardest case for DDP
    # (the first encoder's last layer is unused; no gradient sync between micro-batches).
    dataset = make_dataset(tmp_path / "outputs", "sdxl", count=4)
    config = tmp_path / "finetune.yaml"
    options = fast_options(
        steps=4, validation_steps=2, checkpoint_steps=2, tensorboard=True, train_text_encoder=True,
        gradient_accumulation=2,
    )  # fmt: skip
    config.write_text(yaml.safe_dump({**options, "cache_dir": str(tmp_path / "cache")}))
    result = _launch(2, dataset, tiny_sdxl, config)
    assert result.returncode == 0, result.stderr[-3000:]

    lora = dataset.parent / "lora"
    record = read_training_record(lora)
    assert record.num_processes == 2 and record.steps == 4
    # Only the main process reports and writes: one of each message, one set of files.
    err = result.stderr.replace("\n", " ")
    assert err.count("LoRA written to") == 1 and err.count("final validation at step 4") == 1
    assert sorted(p.name for p in (lora / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    assert sorted(p.name for p in (lora / "samples").iterdir()) == [
        "samples.json", "step-000002_seed-0.png", "step-000004_seed-0.png",
    ]  # fmt: skip
    assert not [p for p in lora.rglob("*") if p.name.startswith(".")], "no temporary files left"
    assert len(list((lora / "logs").glob("events.out.tfevents.*"))) == 1

    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(tiny_sdxl)
    pipe.set_progress_bar_config(disable=True)

    def latents():
        generator = torch.Generator().manual_seed(0)
        return pipe("a photo of sks person", num_inference_steps=2, height=64, width=64,
                    output_type="latent", generator=generator).images  # fmt: skip

    base = latents()
    pipe.load_lora_weights(lora)
    assert (latents() - base).abs().mean() > 1e-3


def _relative_difference(first: list[torch.Tensor], second: list[torch.Tensor]) -> float:
    """|a - b| / |a| over all the tensors together (L2)."""
    a, b = torch.cat([t.flatten() for t in first]), torch.cat([t.flatten() for t in second])
    return float((a - b).norm() / a.norm())


def test_two_processes_equal_one_process_at_the_same_global_batch(tiny_sd15, tmp_path):
    """Data parallel means averaged gradients: 2 processes x 1 image per step train the same
    LoRA as 1 process x 2 images, with prior preservation (the class images split alike).

    Float tolerance: the two sum the same terms in another order (batched convolutions,
    gloo's all-reduce), about 1e-7 relative per operation. Compared as L2 norms over the
    whole LoRA: AdamW divides each update by |gradient|, so an element whose gradient
    nearly cancels to zero turns that rounding into a visible step (measured: one element
    of 256 off by 0.7% of the learning rate; the whole LoRA by 3e-6 relative).
    """
    from safetensors.torch import load_file

    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    options = fast_options(steps=3, lr=1e-2, num_class_images=4, checkpoint_steps=1, checkpoints_keep=3)
    options["cache_dir"] = str(tmp_path / "cache")  # the same class images for both
    one = make_dataset(tmp_path / "one", "sd15", count=4)
    finetune_dataset(one, FinetuneConfig(base_model=str(tiny_sd15), **options, batch_size=2))
    two = make_dataset(tmp_path / "two", "sd15", count=4)
    config = tmp_path / "two.yaml"
    config.write_text(yaml.safe_dump({**options, "batch_size": 1}))
    result = _launch(2, two, tiny_sd15, config)
    assert result.returncode == 0, result.stderr[-3000:]

    runs = {1: one.parent / "lora", 2: two.parent / "lora"}
    assert {n: read_training_record(lora).num_processes for n, lora in runs.items()} == {1: 1, 2: 2}
    # The same examples, noise and timesteps: the same loss at every step.
    losses = {n: json.loads((lora / "checkpoints" / "step-000003" / "state.json").read_text())["losses"]
              for n, lora in runs.items()}  # fmt: skip
    assert losses[2] == pytest.approx(losses[1], rel=1e-6)
    # AdamW's first moment after step 1 is 0.1 x that step's (clipped) gradient: the averaged one.
    moments = {
        n: torch.load(lora / "checkpoints" / "step-000001" / "optimizer.pt", weights_only=True)["state"]
        for n, lora in runs.items()
    }
    gradients = {n: [moments[n][i]["exp_avg"] for i in sorted(moments[1])] for n in runs}
    assert _relative_difference(gradients[1], gradients[2]) < 1e-5
    loras = {n: load_file(lora / "pytorch_lora_weights.safetensors") for n, lora in runs.items()}
    assert loras[1].keys() == loras[2].keys()
    assert max(float(t.abs().max()) for k, t in loras[1].items() if "up" in k) > 1e-2, "training moved"
    assert _relative_difference(list(loras[1].values()), [loras[2][k] for k in loras[1]]) < 1e-5
