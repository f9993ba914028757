"""Data-parallel training under `accelerate launch` with 2 CPU processes.

`accelerate launch --cpu` starts a single process unless MPI is set up; `--multi_gpu`
starts N processes with torchrun, which on a machine without CUDA form a gloo group.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import yaml
from finetune_support import fast_options, make_dataset

from headshot.training.training_record import read_training_record


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
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "headshot", "finetune", str(dataset), "-m", str(tiny_sdxl), "--config", str(config),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    result = subprocess.run(launch, env=environment, capture_output=True, text=True, timeout=300)
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
