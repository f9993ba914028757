"""GPU benchmark (issue 17): LoRA training on a quantized frozen base, peak memory and s/step.

One prepared script, well under 10 minutes on one H100/H200-class GPU:
- full-size FLUX.1-dev transformer (its shipped config, random weights, about 12 B parameters) at
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
    python bench/bench_quantized_base.py --cpu-check     # the same code path, tiny models, CPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import diffusers
import torch

from headshot import memory_plan as mp

sys.path.insert(0, str(Path(__file__).parent))


def _save_random(cls, config: dict, folder: Path, dtype) -> Path:
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):  # random init on the GPU: minutes faster than on the CPU
        model = cls.from_config(config).to(dtype)
    model.save_pretrained(folder, max_shard_size="10GB")
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return folder


def model_folder(name: str, tiny: bool, scratch: Path) -> Path:
    """A diffusers folder of the shipped full-size configs `name` with a random denoiser saved in
    bf16 (or, `tiny`, the family's tiny model): the text encoders' and VAE's configs give the
    memory plan its prompt and latent shapes."""
    from full_size_support import model_folder as config_folder

    from headshot.families import family_of_folder
    from headshot.full_size import component_config

    folder = config_folder(name, tiny, scratch)
    if not tiny:
        denoiser = family_of_folder(folder).denoiser
        cls = getattr(diffusers, mp.components(folder)[denoiser][1])
        _save_random(cls, component_config(folder, denoiser), folder / denoiser, torch.bfloat16)
    return folder


def estimate(folder: Path, family, settings, resolution: int, dtype) -> int:
    """The memory plan's bytes for the denoiser part: weights, LoRA state, traced activations
    (memory_check's own functions: the meta denoiser with the run's LoRA, traced on the
    family's training inputs)."""
    from headshot.training.adapters import lora_parameter_count
    from headshot.training.memory_check import meta_denoiser, trace_training

    comps = mp.components(folder)
    element = torch.tensor([], dtype=dtype).element_size()
    weights = mp.weight_bytes(mp.component_tensors(folder, family.denoiser), element, settings.quantize_base)
    denoiser = meta_denoiser(folder, comps, family, settings, dtype)
    lora = lora_parameter_count(denoiser) * 16  # float32 weights, gradients, AdamW's two moments
    activations = trace_training(folder, comps, family, settings, resolution, dtype, denoiser)
    return weights + lora + activations


def bench_case(name: str, folder: Path, quantize: str, resolution: int, steps: int, device: str):
    from full_size_support import cached_inputs

    from headshot.families import family_of_folder
    from headshot.quantize import check_quantization, pipeline_quantization
    from headshot.training.adapters import add_denoiser_lora
    from headshot.training.finetune_config import FinetuneConfig

    family = family_of_folder(folder)
    flow = family.objective == "flow"
    cls = getattr(diffusers, mp.components(folder)[family.denoiser][1])
    dtype = torch.bfloat16
    extra = {"max_sequence_length": 512} if flow else {}
    settings = FinetuneConfig(
        base_model=str(folder), rank=16, quantize_base=quantize, gradient_checkpointing=flow,
        prior_preservation=False, **extra,
    )  # fmt: skip
    try:
        check_quantization(quantize, device.split(":")[0])
    except Exception as exc:  # the product's own error: reported, the other cases still run
        print(f"  {name} {quantize:4s}: skipped ({exc})")
        return None
    planned = estimate(folder, family, settings, resolution, dtype)
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    quantization = pipeline_quantization(quantize, family.denoiser, dtype)
    mapping = {"quantization_config": quantization.quant_mapping[family.denoiser]} if quantization else {}
    started = time.perf_counter()
    model = cls.from_pretrained(
        folder / family.denoiser, dtype=dtype, device_map=device if cuda else None, **mapping
    )
    if not quantization or not cuda:
        model.to(device)
    load_s = time.perf_counter() - started
    model.requires_grad_(False)
    add_denoiser_lora(family, model, settings)  # the trainer's LoRA: the same targets
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()  # LoRA weights train in float32
    if settings.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    latents, prompts, time_ids = cached_inputs(folder, family, settings, resolution, dtype, device)
    timesteps = torch.full((len(latents),), 0.5 if flow else 500.0, device=device)
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
    measured = f"peak {mp.gib(peak)}" if peak is not None else "peak (CPU: not measured)"
    print(
        f"  {name} {quantize:4s}: {per_step:7.3f} s/step ({1 / per_step:5.2f} steps/s), {measured}, "
        f"memory plan {mp.gib(planned)}, load {load_s:5.1f} s"
    )
    del model, optimizer
    if cuda:
        torch.cuda.empty_cache()
    return per_step, peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cpu-check", action="store_true", help="the tiny models on the CPU (the code path only)"
    )
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (after 2 warm-up steps)")
    parser.add_argument("--cases", default="none,int8,fp8,nf4", help="FLUX quantize_base values to run")
    args = parser.parse_args()
    from headshot import library_notices

    library_notices.install()
    if args.cpu_check:
        device, resolution = "cpu", 64
    elif torch.cuda.is_available():
        device, resolution = "cuda", 1024
    else:
        print("no CUDA GPU: run with --cpu-check for the code path on tiny configs (numbers meaningless)")
        return 1
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"quantized base benchmark on {name}, {resolution}x{resolution}, batch 1, bf16, LoRA r16")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=None if device == "cpu" else ".") as scratch:
        flux_folder = model_folder("flux-dev", args.cpu_check, Path(scratch))
        print(f"  the FLUX model is ready ({time.perf_counter() - started:.0f} s)")
        results = {}
        for quantize in args.cases.split(","):
            results[quantize] = bench_case("flux", flux_folder, quantize, resolution, args.steps, device)
        base = results.get("none")
        for quantize, result in results.items():
            if result and base and quantize != "none":
                fits = result[1] is not None and result[1] < 24 * 2**30
                print(
                    f"  flux {quantize}: {result[0] / base[0]:.2f}x the bf16 step time, under 24 GB: {fits}"
                )
        sdxl_folder = model_folder("sdxl", args.cpu_check, Path(scratch))
        bench_case("sdxl", sdxl_folder, "none", resolution, args.steps * 4, device)
    print("  goals: FLUX a configuration < 24 GB at <= 1.5x the bf16 step time; SDXL >= 3 steps/s, < 16 GB")
    print(f"  total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
