"""Benchmark: headshot's full training step vs the bare floor, measured in one run.

Full step: `headshot.training.trainer.train` as `headshot finetune` runs it (batch
assembly from the latent cache, seeded noise and timesteps, min-SNR and face-mask
weighting, prior-preservation split, accelerate backward, clipping, optimizer and
LR scheduler, loss gathering, progress). Floor: UNet forward + backward + AdamW
step on the same LoRA-adapted UNet with precomputed inputs of the same shapes.

    python bench/bench_finetune.py              # tiny SD1.5 model, CPU
    python bench/bench_finetune.py --gpu-sdxl   # full-size SDXL UNet, 1024x1024, bf16 (CUDA only)
"""

from __future__ import annotations

import argparse
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

WARMUP, MEASURED = 10, 100  # medians of per-step times: robust to other load on shared cores


def _peak_rss_mib() -> float:
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _write_dataset(root: Path, resolution: int = 64) -> Path:
    """A dataset folder from the sample portrait (centre crops; the bench needs no face detection)."""
    from PIL import Image

    from headshot.dataset_record import DatasetRecord, PhotoRecord
    from headshot.records import atomic_save_image, atomic_write_json
    from headshot.samples import SUBJECT_VARIANTS, grace_hopper

    dataset = root / "bench" / "dataset"
    photos = []
    for name, transform in SUBJECT_VARIANTS.items():
        image = transform(grace_hopper())
        side = min(image.size)
        crop = image.crop((0, 0, side, side)).resize((resolution, resolution), Image.LANCZOS)
        atomic_save_image(dataset / "images" / f"{name}.png", crop)
        atomic_save_image(dataset / "masks" / f"{name}.png", Image.new("L", crop.size, 255))
        photos.append(PhotoRecord(source=f"{name}.jpg", sha256="0" * 64, verdict="accepted",
                                  image=f"images/{name}.png", mask=f"masks/{name}.png"))  # fmt: skip
    record = DatasetRecord(subject="bench", family="sd15", resolution=resolution, photos=photos)
    atomic_write_json(dataset / "dataset.json", record.model_dump(mode="json"))
    return dataset


def bench_tiny() -> None:
    """Full step and floor interleaved, step by step, on the same model: same machine load for both."""
    from headshot.training.finetune import open_session
    from headshot.training.finetune_config import FinetuneConfig
    from headshot.training.tiny_model import save_tiny_model
    from headshot.training.trainer import train

    torch.set_num_threads(1)  # 2 shared cores: one thread gives stable timings
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = save_tiny_model("sd15", root / "model")
        config = FinetuneConfig(
            base_model=str(model), steps=10_000, stop_after_steps=1, checkpoint_steps=0, rank=4, lr=1e-3,
            num_class_images=4, class_inference_steps=2, validation_steps=0, tensorboard=False,
            cache_dir=root / "cache",
        )  # fmt: skip
        session = open_session(_write_dataset(root), config)
        session.run.on_step_end = lambda *_: None  # no checkpoints or validation inside the timing
        run, unet = session.run, session.run.denoiser
        # The floor: the same UNet and optimizer, inputs of the same shapes computed once.
        batch = 2  # one subject image + one class image (prior preservation)
        latents, noise = torch.randn(batch, 4, 8, 8), torch.randn(batch, 4, 8, 8)
        timesteps = torch.randint(0, 1000, (batch,))
        hidden = torch.randn(batch, 77, unet.config.cross_attention_dim)

        def floor_step() -> float:
            started = time.perf_counter()
            prediction = unet(latents + noise, timesteps, encoder_hidden_states=hidden).sample
            torch.nn.functional.mse_loss(prediction, noise).backward()
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - started

        floors, state = [], session.state
        for _ in range(WARMUP + MEASURED):
            state = train(run, state, progress=lambda *_: None)
            floors.append(floor_step())
        full_rss = _peak_rss_mib()
        full = statistics.median(state.step_seconds[WARMUP:])
        floor = statistics.median(floors[WARMUP:])
        session.close()
    print(f"tiny sd15, 64x64, batch 1 + 1 prior image, LoRA rank 4; medians of {MEASURED} interleaved steps")
    print(f"  full training step : {full * 1000:8.2f} ms")
    print(f"  bare floor         : {floor * 1000:8.2f} ms   (UNet fwd + bwd + AdamW, precomputed inputs)")
    print(f"  ratio              : {full / floor:8.3f}x   (goal <= 1.10x)")
    print(f"  peak RSS           : {full_rss:8.0f} MiB  (whole process: libraries, model, latent caches)")


def bench_gpu_sdxl(steps: int = 20) -> None:
    """Full-size SDXL UNet (random weights), 1024x1024, batch 1, bf16, gradient checkpointing."""
    if not torch.cuda.is_available():
        print("--gpu-sdxl: no CUDA device here; nothing measured")
        return
    from diffusers import DDPMScheduler
    from sdxl_full_size import full_size_sdxl_unet

    from headshot.families import get_family
    from headshot.families.base import PromptEmbeddings
    from headshot.families.objectives import NoiseObjective
    from headshot.families.sd import UNET_ATTENTION
    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    unet = full_size_sdxl_unet().to("cuda", torch.bfloat16)
    from peft import LoraConfig

    unet.requires_grad_(False)
    lora = LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian", target_modules=UNET_ATTENTION)
    unet.add_adapter(lora)
    for parameter in unet.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    unet.enable_gradient_checkpointing()
    unet.train()
    scheduler = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    device = "cuda"
    batch = Batch(
        latents=torch.randn(1, 4, 128, 128, device=device, dtype=torch.bfloat16),
        masks=torch.ones(1, 1, 128, 128, device=device),
        time_ids=torch.tensor([[1024, 1024, 0, 0, 1024, 1024]], device=device, dtype=torch.bfloat16),
        prompts=PromptEmbeddings(
            torch.randn(1, 77, 2048, device=device, dtype=torch.bfloat16),
            torch.randn(1, 1280, device=device, dtype=torch.bfloat16),
        ),
        num_instance=1,
        noise_seeds=[0],
    )
    settings = LossSettings(prior_loss_weight=1.0, face_loss_weight=2.0)
    objective, family = NoiseObjective(scheduler, snr_gamma=5.0, noise_offset=0.0), get_family("sdxl")
    optimizer = torch.optim.AdamW([p for p in unet.parameters() if p.requires_grad], lr=1e-4)
    torch.cuda.reset_peak_memory_stats()
    for index in range(steps + 3):
        if index == 3:
            torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _, _ = dreambooth_loss(family, unet, objective, batch, settings)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    per_step = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30
    print("SDXL UNet (full size, random weights), 1024x1024, batch 1, bf16, gradient checkpointing, LoRA r16")
    print(f"  {torch.cuda.get_device_name()}: {1 / per_step:.2f} steps/s, peak GPU memory {peak:.1f} GiB")
    print("  goals: >= 3 steps/s on an H100, < 16 GB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-sdxl", action="store_true", help="measure the full-size SDXL UNet on CUDA")
    args = parser.parse_args()
    if args.gpu_sdxl:
        bench_gpu_sdxl()
    else:
        bench_tiny()


if __name__ == "__main__":
    sys.exit(main())
