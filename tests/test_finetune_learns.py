"""It learns: after training, instance-prompt images move toward the subject, and prior
preservation keeps class-prompt images anchored to the base model's own class renders.

Measured in latent space (the VAE of the tiny model is random, so decoding and
re-encoding is not an identity; latents are where the UNet learns). The tiny model's
VAE latent scale is calibrated to unit variance when it is built, as Stable Diffusion's
own factor was, so that the subject's latents differ from the class renders' at all.

Limit, measured: the tiny random UNet barely attends to its prompt (swapping "a photo
of sks person" for "a photo of person" changes its output by ~2%), so it cannot learn
to keep the two prompts apart in a test-sized run. The two effects are therefore
measured separately: the instance prompt against the base model, and the class
prompt with prior preservation against a control run trained without it.
"""

from __future__ import annotations

import shutil

import torch
from finetune_support import fast_options, make_dataset

from headshot.pipelines.tiny import save_tiny_model
from headshot.training.data import encode_latents, load_class_images, load_instance_images
from headshot.training.finetune import finetune_dataset
from headshot.training.finetune_config import FinetuneConfig

SEEDS = range(4)


def _generate(pipe, prompt: str) -> torch.Tensor:
    return torch.cat(
        [
            pipe(prompt, num_inference_steps=10, guidance_scale=1.0, height=64, width=64,
                 output_type="latent", generator=torch.Generator().manual_seed(seed)).images
            for seed in SEEDS
        ]
    )  # fmt: skip


def _distance(generated: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean over generated latents of the RMS distance to the nearest target latent."""
    rms = ((generated[:, None] - targets[None]) ** 2).mean(dim=(2, 3, 4)).sqrt()
    return float(rms.min(dim=1).values.mean())


def test_instance_prompt_learns_the_subject_and_prior_keeps_the_class(tmp_path):
    from diffusers import DiffusionPipeline

    model = save_tiny_model("sd15", tmp_path / "model")
    dataset = make_dataset(tmp_path / "with-prior", "sd15")
    control = shutil.copytree(dataset, tmp_path / "no-prior" / "ada" / "dataset")
    options = fast_options(
        steps=150, lr=1e-2, rank=8, unet_lora_layers="all", num_class_images=8, class_inference_steps=10,
        snr_gamma=None, face_loss_weight=1.0,
    )  # fmt: skip
    config = FinetuneConfig(base_model=str(model), cache_dir=tmp_path / "cache", **options)
    record = finetune_dataset(dataset, config)
    finetune_dataset(control, config.model_copy(update={"prior_preservation": False}))

    pipe = DiffusionPipeline.from_pretrained(model)
    pipe.set_progress_bar_config(disable=True)
    from headshot.training.data import read_training_dataset

    subject = encode_latents(pipe.vae, load_instance_images(dataset, read_training_dataset(dataset)), 64)
    class_files = sorted((tmp_path / "cache" / "class_images").glob("*/0*.png"))
    renders = encode_latents(pipe.vae, load_class_images(class_files, 64), 64)
    instance, klass = record.instance_prompt, record.class_prompt

    base_instance = _distance(_generate(pipe, instance), subject.latents)
    pipe.load_lora_weights(dataset.parent / "lora")
    trained_instance = _distance(_generate(pipe, instance), subject.latents)
    prior_class = _generate(pipe, klass)
    pipe.unload_lora_weights()
    pipe.load_lora_weights(control.parent / "lora")
    drifted_class = _generate(pipe, klass)

    numbers = {
        "instance->subject base": base_instance,
        "instance->subject trained": trained_instance,
        "class->renders prior": _distance(prior_class, renders.latents),
        "class->renders no prior": _distance(drifted_class, renders.latents),
    }
    # Measured on 2 CPU cores (deterministic): 8.91 -> 3.90, and 3.86 vs 4.12.
    assert trained_instance < 0.6 * base_instance, numbers
    assert numbers["class->renders prior"] < 0.97 * numbers["class->renders no prior"], numbers
