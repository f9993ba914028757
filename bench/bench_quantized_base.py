"""GPU benchmark (issue 17): LoRA training on a quantized frozen base, peak memory and s/step.

One prepared script, well under 10 minutes on one H100/H200-class GPU:
- full-size FLUX.1-dev transformer (its config, random weights, about 12 B parameters) at
  1024x1024 (4096 image tokens, T5 512 tokens), batch 1, bf16, LoRA rank 16 on the attention
  projections, gradient checkpointing, for quantize_base none / int8 / fp8 (torchao) / nf4
  (bitsandbytes, skipped with a note when not installed); goal: a configuration under 24 GB
  at most 1.5x the bf16 (none) step time;
- full-size SDXL UNet at 1024x1024, batch 1, bf16, LoRA rank 16; goals: >= 3 steps/s, < 16 GB.

Each model is saved once with random weights in diffusers format and loaded back through
headshot's own quantization configs (headshot.quantize.pipeline_quantization), so the
quantized weights are made exactly as `headshot finetune` makes them. The peak is
torch.cuda.max_memory_allocated from the start of loading; next to it, the memory plan's
estimate for the same denoiser (weights, LoRA state, traced activations).

    python bench/bench_quantized_base.py                 # on a CUDA GPU
    python bench/bench_quantized_base.py --cpu-check     # the same code path, tiny configs, CPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_finetune_flux import FLUX_DEV, TINY  # noqa: E402

SDXL_TINY = dict(
    sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=(2, 4), use_linear_projection=True,
    transformer_layers_per_block=(1, 2), addition_embed_type="text_time", addition_time_embed_dim=8,
    projection_class_embeddings_input_dim=6 * 8 + 32, norm_num_groups=8,
)  # fmt: skip


def _save_random(cls, config: dict, folder: Path, dtype) -> Path:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # random init on the GPU: minutes faster than on the CPU
        model = cls(**config).to(dtype)
    model.save_pretrained(folder, max_shard_size="10GB")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def _inputs(family, kind: str, config: dict, resolution: int, device: str, dtype):
    from headshot.families.base import PromptEmbeddings

    side = resolution // 8
    if kind == "flux":
        latents = torch.randn(1, 16, side, side, device=device, dtype=dtype)
        prompts = PromptEmbeddings(
            torch.randn(1, 512, config["joint_attention_dim"], device=device, dtype=dtype),
            torch.randn(1, config["pooled_projection_dim"], device=device, dtype=dtype),
        )
        return latents, prompts, torch.zeros(1, 0, device=device), torch.full((1,), 0.5, device=device)
    latents = torch.randn(1, 4, side, side, device=device, dtype=dtype)
    pooled = config["projection_class_embeddings_input_dim"] - 6 * config["addition_time_embed_dim"]
    prompts = PromptEmbeddings(
        torch.randn(1, 77, config["cross_attention_dim"], device=device, dtype=dtype),
        torch.randn(1, pooled, device=device, dtype=dtype),
    )
    time_ids = family.time_ids((resolution, resolution), resolution)[None].to(device, dtype)
    return latents, prompts, time_ids, torch.full((1,), 500.0, device=device)


def estimate(cls, folder: Path, family, kind: str, config: dict, settings, resolution: int, dtype) -> int:
    """The memory plan's bytes for the denoiser part: weights, LoRA state, traced activations."""
    from headshot import memory_plan as mp
    from headshot.training.memory_check import denoiser_activations

    tensors = mp.component_tensors(folder.parent, folder.name)
    element = torch.tensor([], dtype=dtype).element_size()
    weights = mp.weight_bytes(tensors, element, settings.quantize_base)
    lora = mp.lora_parameters(tensors, family.lora_targets[settings.lora_layers], settings.rank) * 16
    noisy, prompts, time_ids, timesteps = _inputs(family, kind, config, resolution, "meta", dtype)

    def meta_model():
        with torch.device("meta"):
            return cls(**config).to(dtype)

    activations = denoiser_activations(
        meta_model, family, settings, dtype, noisy, timesteps, prompts, time_ids
    )
    return weights + lora + activations


def bench_case(
    kind: str, folder: Path, config: dict, quantize: str, resolution: int, steps: int, device: str
):
    from diffusers import FluxTransformer2DModel, UNet2DConditionModel

    from headshot.families import get_family
    from headshot.quantize import check_quantization, pipeline_quantization
    from headshot.training.adapters import add_lora_adapters  # noqa: F401  (the trainer's LoRA)
    from headshot.training.finetune_config import FinetuneConfig

    family = get_family("flux" if kind == "flux" else "sdxl")
    cls = FluxTransformer2DModel if kind == "flux" else UNet2DConditionModel
    dtype = torch.bfloat16
    extra = {"max_sequence_length": 512} if kind == "flux" else {}
    settings = FinetuneConfig(
        base_model="unused", rank=16, quantize_base=quantize, gradient_checkpointing=kind == "flux", **extra
    )
    try:
        check_quantization(quantize, device.split(":")[0])
    except Exception as exc:  # the product's own error: reported, the other cases still run
        print(f"  {kind} {quantize:4s}: skipped ({exc})")
        return None
    planned = estimate(cls, folder, family, kind, config, settings, resolution, dtype)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    quantization = pipeline_quantization(quantize, family.denoiser, dtype)
    mapping = {"quantization_config": quantization.quant_mapping[family.denoiser]} if quantization else {}
    started = time.perf_counter()
    model = cls.from_pretrained(folder, dtype=dtype, device_map=device if cuda else None, **mapping)
    if not quantization or not cuda:
        model.to(device)
    load_s = time.perf_counter() - started
    _add_lora(model, family, settings)
    if settings.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    latents, prompts, time_ids, timesteps = _inputs(family, kind, config, resolution, device, dtype)
    times = []
    for index in range(steps + 2):
        if cuda:
            torch.cuda.synchronize()
        begun = time.perf_counter()
        noise = torch.randn_like(latents)
        with torch.autocast(device.split(":")[0], dtype=dtype):
            prediction = family.predict(model, latents + noise, timesteps, prompts, time_ids, 1.0)
            loss = torch.nn.functional.mse_loss(prediction.float(), noise.float())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        if index >= 2:
            times.append(time.perf_counter() - begun)
    peak = (torch.cuda.max_memory_allocated() - baseline) if cuda else None
    per_step = statistics.median(times)
    from headshot.memory_plan import gib

    measured = f"peak {gib(peak)}" if peak is not None else "peak (CPU: not measured)"
    print(
        f"  {kind} {quantize:4s}: {per_step:7.3f} s/step ({1 / per_step:5.2f} steps/s), {measured}, "
        f"memory plan {gib(planned)}, load {load_s:5.1f} s"
    )
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return per_step, peak


def _add_lora(model, family, settings) -> None:
    from peft import LoraConfig

    model.requires_grad_(False)
    model.add_adapter(
        LoraConfig(
            r=settings.rank, lora_alpha=settings.lora_alpha, init_lora_weights="gaussian",
            target_modules=family.lora_targets[settings.lora_layers],
        )
    )  # fmt: skip
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()  # LoRA weights train in float32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-check", action="store_true", help="tiny configs on the CPU (the code path only)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (after 2 warm-up steps)")
    parser.add_argument("--cases", default="none,int8,fp8,nf4", help="FLUX quantize_base values to run")
    args = parser.parse_args()
    from headshot import library_notices

    library_notices.install()
    from diffusers import FluxTransformer2DModel, UNet2DConditionModel
    from sdxl_full_size import FULL_SDXL_UNET

    if args.cpu_check:
        device, resolution, flux, sdxl = "cpu", 64, TINY, SDXL_TINY
    elif torch.cuda.is_available():
        device, resolution, flux, sdxl = "cuda", 1024, FLUX_DEV, FULL_SDXL_UNET
    else:
        print("no CUDA GPU: run with --cpu-check for the code path on tiny configs (numbers meaningless)")
        return 1
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"quantized base benchmark on {name}, {resolution}x{resolution}, batch 1, bf16, LoRA r16")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=None if device == "cpu" else ".") as scratch:
        flux_folder = _save_random(
            FluxTransformer2DModel, flux, Path(scratch) / "flux" / "transformer", torch.bfloat16
        )
        print(f"  saved the random FLUX transformer ({time.perf_counter() - started:.0f} s)")
        results = {}
        for quantize in args.cases.split(","):
            results[quantize] = bench_case(
                "flux", flux_folder, flux, quantize, resolution, args.steps, device
            )
        base = results.get("none")
        for quantize, result in results.items():
            if result and base and quantize != "none":
                fits = result[1] is not None and result[1] < 24 * 2**30
                print(
                    f"  flux {quantize}: {result[0] / base[0]:.2f}x the bf16 step time, under 24 GB: {fits}"
                )
        sdxl_folder = _save_random(
            UNet2DConditionModel, sdxl, Path(scratch) / "sdxl" / "unet", torch.bfloat16
        )
        bench_case("sdxl", sdxl_folder, sdxl, "none", resolution, args.steps * 4, device)
    print("  goals: FLUX a configuration < 24 GB at <= 1.5x the bf16 step time; SDXL >= 3 steps/s, < 16 GB")
    print(f"  total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
