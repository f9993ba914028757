"""Benchmark: headshot's full FLUX training step vs the bare transformer floor, in one run.

For either flow-matching family (`--family flux` for FLUX.1, `--family flux2-klein`).
Full step: `headshot.training.trainer.train` as `headshot finetune` runs it on the family's
tiny model (batch assembly from the latent and prompt caches, seeded noise and logit-normal
timesteps with the family's resolution shift, packing and position ids, guidance embedding
where the model has one, face-mask weighting, prior split, accelerate backward, clipping,
AdamW, LR scheduler, loss gather). Floor: transformer forward + backward + AdamW step on the
same LoRA-adapted transformer with precomputed packed inputs of the same shapes.

    python bench/bench_finetune_flux.py [--family F]             # tiny model, CPU
    python bench/bench_finetune_flux.py --family F --gpu         # full-size transformer, 1024 px, bf16
    python bench/bench_finetune_flux.py --family F --gpu --cpu-check   # the same code path, tiny config, CPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_finetune import MEASURED, WARMUP, _peak_rss_mib, _write_dataset  # noqa: E402

# FLUX.1-dev's transformer config (black-forest-labs/FLUX.1-dev, transformer/config.json).
FLUX_DEV = dict(
    patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True,
    axes_dims_rope=(16, 56, 56),
)  # fmt: skip
TINY = dict(FLUX_DEV, num_layers=2, num_single_layers=2, attention_head_dim=16, num_attention_heads=4,
            joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 6, 6))  # fmt: skip
# FLUX.2 [klein] 4B's transformer (5 double + 20 single blocks, 24 heads x 128, Qwen3-4B's three
# stacked layers: 3 x 2560 = 7680 wide, no guidance embedding), about 3.9 B parameters.
KLEIN_4B = dict(
    patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
    num_attention_heads=24, joint_attention_dim=7680, axes_dims_rope=(32, 32, 32, 32), guidance_embeds=False,
)  # fmt: skip
KLEIN_TINY = dict(KLEIN_4B, num_layers=2, num_single_layers=2, attention_head_dim=32, num_attention_heads=4,
                  joint_attention_dim=48, axes_dims_rope=(8, 8, 8, 8))  # fmt: skip
# Per family: (full-size config, tiny config, goal in s/step on an H200).
CONFIGS = {"flux": (FLUX_DEV, TINY, 0.7), "flux2-klein": (KLEIN_4B, KLEIN_TINY, 0.35)}


def floor_inputs(family: str, batch: int, config: dict) -> tuple[dict, torch.Tensor]:
    """The transformer's own inputs for a 64 px image and 64 text tokens, precomputed, and a target."""
    if family == "flux":
        from headshot.families.flux1 import image_ids, pack

        inputs = dict(
            hidden_states=pack(torch.randn(batch, 16, 8, 8)),
            timestep=torch.rand(batch),
            guidance=torch.full((batch,), 1.0),
            pooled_projections=torch.randn(batch, config["pooled_projection_dim"]),
            encoder_hidden_states=torch.randn(batch, 64, config["joint_attention_dim"]),
            txt_ids=torch.zeros(64, 3),
            img_ids=image_ids(8, 8, "cpu", torch.float32),
        )
        return inputs, torch.randn(batch, 16, 64)
    from headshot.families.flux2_klein import position_ids

    image, text = position_ids(4, 4, 64, batch, "cpu")  # 64 px -> 4x4 patchified latent tokens
    inputs = dict(
        hidden_states=torch.randn(batch, 16, 128),
        timestep=torch.rand(batch),
        encoder_hidden_states=torch.randn(batch, 64, config["joint_attention_dim"]),
        img_ids=image,
        txt_ids=text,
    )
    return inputs, torch.randn(batch, 16, 128)


def bench_tiny(family_name: str) -> None:
    from headshot.dataset_record import read_dataset
    from headshot.families import get_family
    from headshot.records import atomic_write_json
    from headshot.training.finetune import open_session
    from headshot.training.finetune_config import FinetuneConfig
    from headshot.training.tiny_model import save_tiny_model
    from headshot.training.trainer import train

    torch.set_num_threads(1)  # 2 shared cores: one thread gives stable timings
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        model = save_tiny_model(family_name, root / "model")
        dataset = _write_dataset(root)
        record = read_dataset(dataset).model_copy(update={"family": family_name})
        atomic_write_json(dataset / "dataset.json", record.model_dump(mode="json"))
        config = FinetuneConfig(
            base_model=str(model), steps=10_000, stop_after_steps=1, checkpoint_steps=0, rank=4, lr=1e-3,
            num_class_images=4, class_inference_steps=2, validation_steps=0, tensorboard=False,
            cache_dir=root / "cache", max_sequence_length=64,
        )  # fmt: skip
        session = open_session(dataset, config)
        session.run.on_step_end = lambda *_: None  # no checkpoints or validation inside the timing
        run, transformer = session.run, session.run.denoiser
        batch = 2  # one subject + one class image; 64 px -> 16 image tokens
        inputs, target = floor_inputs(family_name, batch, CONFIGS[family_name][1])

        def floor_step() -> float:
            started = time.perf_counter()
            prediction = transformer(**inputs, return_dict=False)[0]
            torch.nn.functional.mse_loss(prediction, target).backward()
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            return time.perf_counter() - started

        floors, state = [], session.state
        for _ in range(WARMUP + MEASURED):
            state = train(run, state, progress=lambda *_: None)
            floors.append(floor_step())
        full = statistics.median(state.step_seconds[WARMUP:])
        floor = statistics.median(floors[WARMUP:])
        rss = _peak_rss_mib()
        session.close()
    assert get_family(family_name).objective == "flow"
    print(
        f"tiny {family_name}, 64x64, batch 1 + 1 prior image, 64 text tokens, LoRA rank 4; "
        f"medians of {MEASURED} steps"
    )
    print(f"  full training step : {full * 1000:8.2f} ms")
    print(
        f"  bare floor         : {floor * 1000:8.2f} ms   (transformer fwd + bwd + AdamW, precomputed inputs)"
    )
    print(f"  ratio              : {full / floor:8.3f}x   (goal <= 1.10x)")
    print(f"  peak RSS           : {rss:8.0f} MiB")


def bench_full_size(family_name: str, device: str, config: dict, resolution: int, steps: int, dtype) -> None:
    """headshot's loss on the family's transformer of `config` (random weights): s/step, peak memory."""
    from diffusers import Flux2Transformer2DModel, FluxTransformer2DModel
    from peft import LoraConfig

    from headshot.families import get_family
    from headshot.families.base import PromptEmbeddings
    from headshot.training.finetune_config import FinetuneConfig
    from headshot.training.loss import Batch, LossSettings, dreambooth_loss

    family = get_family(family_name)
    model_class = FluxTransformer2DModel if family_name == "flux" else Flux2Transformer2DModel
    torch.manual_seed(0)
    with torch.device(device):
        transformer = model_class(**config).to(dtype)
    transformer.requires_grad_(False)
    targets = family.lora_target_modules(transformer, "attention")
    transformer.add_adapter(
        LoraConfig(r=16, lora_alpha=16, init_lora_weights="gaussian", target_modules=targets)
    )
    for parameter in transformer.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    transformer.enable_gradient_checkpointing()
    transformer.train()
    # Training latents: FLUX.1 16 channels at 1/8 (packed 2x2 inside predict); klein 128 at 1/16.
    channels, side = (16, resolution // 8) if family_name == "flux" else (128, resolution // 16)
    pooled = config.get("pooled_projection_dim")
    batch = Batch(
        latents=torch.randn(1, channels, side, side, device=device, dtype=dtype),
        masks=torch.ones(1, 1, side, side, device=device),
        time_ids=torch.zeros(1, 0, device=device),
        prompts=PromptEmbeddings(
            torch.randn(1, 512, config["joint_attention_dim"], device=device, dtype=dtype),
            None if family_name != "flux" else torch.randn(1, pooled, device=device, dtype=dtype),
        ),
        num_instance=1,
        noise_seeds=[0],
    )
    scheduler = SimpleNamespace(config={})
    objective = family.training_objective(
        SimpleNamespace(scheduler=scheduler), FinetuneConfig(base_model="unused")
    )
    settings = LossSettings(prior_loss_weight=1.0, face_loss_weight=2.0, guidance=1.0)
    optimizer = torch.optim.AdamW([p for p in transformer.parameters() if p.requires_grad], lr=1e-4)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    for index in range(steps + 3):
        if index == 3:
            if cuda:
                torch.cuda.synchronize()
            started = time.perf_counter()
        with torch.autocast(device.split(":")[0], dtype=dtype):
            batch.noise_seeds = [index]  # a fresh draw each step
            loss, _, _ = dreambooth_loss(family, transformer, objective, batch, settings)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    per_step = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    name = torch.cuda.get_device_name() if cuda else "cpu"
    blocks = f"{config['num_layers']}+{config['num_single_layers']} blocks"
    print(
        f"{family_name} transformer ({blocks}, random weights), {resolution}x{resolution}, batch 1, "
        "512 text tokens,"
    )
    print(f"  {dtype}, gradient checkpointing, LoRA r16")
    print(f"  {name}: {per_step:.3f} s/step, peak GPU memory {peak:.1f} GiB, loss {float(loss.detach()):.3f}")
    print(f"  goal: <= {CONFIGS[family_name][2]} s/step on an H200")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=sorted(CONFIGS), default="flux")
    parser.add_argument("--gpu", "--gpu-flux", action="store_true", help="full-size transformer on CUDA")
    parser.add_argument("--cpu-check", action="store_true", help="with --gpu: tiny config on the CPU")
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    full, tiny, _ = CONFIGS[args.family]
    if not args.gpu:
        return bench_tiny(args.family)
    if args.cpu_check:
        return bench_full_size(args.family, "cpu", tiny, 64, args.steps, torch.bfloat16)
    if not torch.cuda.is_available():
        print("--gpu: no CUDA device here; nothing measured (try --cpu-check)")
        return None
    return bench_full_size(args.family, "cuda", full, 1024, args.steps, torch.bfloat16)


if __name__ == "__main__":
    sys.exit(main())
