"""Benchmark `headshot generate`'s rendering against a bare diffusers pipeline call.

Both sides render the same candidates (same prompts, negative prompts, sampler, steps,
guidance, size, LoRA, one generator per image, same batch size) in one process, in
alternating rounds, so machine load hits both alike. The stage's time includes what
it adds: the resume check, PNG encoding, atomic writes and the JSON sidecar. Ranking
(face detection + likeness) is timed separately. The outputs are compared pixel by
pixel to prove the settings really are the same.

    python bench/bench_generate.py                 # tiny SD1.5 and SDXL models, CPU
    python bench/bench_generate.py --full-sdxl     # CUDA only: full-size SDXL config,
                                                   # random weights, 1024x1024, 30 steps

The subject (LoRA, training.json, dataset.json) is built with the test-data helpers in
tests/generate_support.py, so run it from the repository root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sdxl_full_size import full_size_sdxl_unet  # noqa: E402  (bench/ is the script's folder)

from headshot.pipelines.generate_config import GenerateConfig  # noqa: E402
from headshot.pipelines.render import load_renderer, render_jobs  # noqa: E402
from headshot.pipelines.templates import expand_grid, load_templates  # noqa: E402
from headshot.training.training_record import read_training_record  # noqa: E402
from tests.generate_support import make_subject, write_template  # noqa: E402


def bare_pipeline(model: Path, lora_folder: Path, family: str, sampler_class: str, device: str, dtype):
    """The floor: diffusers' own loading, LoRA and scheduler calls, nothing of headshot."""
    import diffusers

    pipeline_class = (
        diffusers.StableDiffusionXLPipeline if family == "sdxl" else diffusers.StableDiffusionPipeline
    )
    extra = {} if family == "sdxl" else {"safety_checker": None, "requires_safety_checker": False}
    pipe = pipeline_class.from_pretrained(model, dtype=dtype, **extra)
    pipe.load_lora_weights(lora_folder, adapter_name="subject")
    pipe.scheduler = getattr(diffusers, sampler_class).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device)


def bare_render(pipe, settings: list[dict]) -> list:
    import torch

    first = settings[0]
    generators = [torch.Generator("cpu").manual_seed(s["seed"]) for s in settings]
    with torch.inference_mode():
        return pipe(
            prompt=[s["prompt"] for s in settings],
            negative_prompt=[s["negative_prompt"] for s in settings],
            num_inference_steps=first["steps"],
            guidance_scale=first["guidance"],
            height=first["size"],
            width=first["size"],
            generator=generators,
            output_type="pil",
        ).images


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def compare(family: str, model: Path, work: Path, args) -> None:
    import torch

    layout = make_subject(work / family, model, family)
    template = write_template(work, f"bench-{family}", steps=args.steps, sampler="euler")
    config = GenerateConfig.model_validate({"performance": {"dtype": args.dtype}, "size": args.size})
    renderer = load_renderer(layout.lora, read_training_record(layout.lora), config, args.device)
    jobs = expand_grid(load_templates([str(template)]), list(range(args.images // 2)))
    settings = [renderer.settings(job) for job in jobs]
    bare = bare_pipeline(
        model, layout.lora, family, settings[0]["scheduler"], args.device, renderer.pipeline.dtype
    )

    # Warm-up (first calls allocate and, on CUDA, autotune), then alternating timed rounds.
    bare_render(bare, settings[: args.batch_size])
    render_jobs(renderer, jobs[: args.batch_size], work / "warmup" / family, batch_size=args.batch_size)
    stage_times, bare_times, stage_peaks = [], [], []
    stage_cpu, bare_cpu = [], []
    bare_images: list = []

    def run_bare(_renders: Path) -> None:
        sync(args.device)
        started, cpu_started = time.perf_counter(), time.process_time()
        bare_images.clear()
        for start in range(0, len(settings), args.batch_size):
            bare_images.extend(bare_render(bare, settings[start : start + args.batch_size]))
        sync(args.device)
        bare_times.append((time.perf_counter() - started) / len(settings))
        bare_cpu.append((time.process_time() - cpu_started) / len(settings))

    def run_stage(renders: Path) -> None:
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        started, cpu_started = time.perf_counter(), time.process_time()
        render_jobs(renderer, jobs, renders, batch_size=args.batch_size, show_progress=False)
        sync(args.device)
        stage_times.append((time.perf_counter() - started) / len(jobs))
        stage_cpu.append((time.process_time() - cpu_started) / len(jobs))
        if args.device.startswith("cuda"):
            # Both pipelines sit on the GPU; the bare one's weights are not the stage's memory.
            stage_peaks.append(torch.cuda.max_memory_allocated() - weight_bytes(bare))

    for round_number in range(args.rounds):
        renders = work / f"renders-{family}-{round_number}"
        # Alternate which side goes first, so neither always runs on a warmer cache.
        sides = [run_bare, run_stage] if round_number % 2 == 0 else [run_stage, run_bare]
        for side in sides:
            side(renders)
    from PIL import Image

    stage_pixels = [
        np.asarray(Image.open(renders / job.template.name / f"{job.stem}.png"), np.int16) for job in jobs
    ]
    worst = max(int(np.abs(a - np.asarray(b, np.int16)).max()) for a, b in zip(stage_pixels, bare_images))

    ranking_per_image = time_ranking(layout, renders, jobs)
    stage, floor = statistics.median(stage_times), statistics.median(bare_times)
    # Each round times both sides back to back; the median of the per-round ratios
    # cancels slow drifts in machine load better than a ratio of medians.
    ratio = statistics.median(s / b for s, b in zip(stage_times, bare_times))
    # CPU seconds of this process (all threads, the writer's included): on a shared
    # machine, far less disturbed by other processes than wall time.
    cpu_ratio = statistics.median(s / b for s, b in zip(stage_cpu, bare_cpu))
    size = settings[0]["size"]
    print(
        f"{family}: {len(jobs)} images {size}x{size}, {args.steps} steps, batch {args.batch_size}, "
        f"{args.rounds} rounds: generate {stage * 1000:.1f} ms/image, bare diffusers {floor * 1000:.1f} "
        f"ms/image, ratio {ratio:.3f} (median of paired rounds; goal <= 1.05); "
        f"CPU-time ratio {cpu_ratio:.3f} ({statistics.median(stage_cpu) * 1000:.1f} vs "
        f"{statistics.median(bare_cpu) * 1000:.1f} ms/image); largest pixel difference {worst}/255; "
        f"ranking (separate) {ranking_per_image * 1000:.1f} ms/image"
    )
    if stage_peaks:
        print(f"{family}: peak GPU memory of the generate stage {max(stage_peaks) / 2**30:.2f} GiB")


def weight_bytes(pipe) -> int:
    import torch

    modules = [c for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
    return sum(p.numel() * p.element_size() for m in modules for p in m.parameters())


def time_ranking(layout, renders: Path, jobs) -> float:
    from PIL import Image

    from headshot.analysis.likeness import SubjectIdentity
    from headshot.dataset_record import read_dataset
    from headshot.pipelines import ranking
    from headshot.pipelines.generate_config import RankingOptions

    identity = SubjectIdentity.from_dataset(read_dataset(layout.dataset))
    options = RankingOptions()
    started = time.perf_counter()
    for job in jobs:
        candidate = ranking.Candidate(job.key, job.template.name, {}, job.seed, "", {})
        with Image.open(renders / job.template.name / f"{job.stem}.png") as image:
            ranking.score_candidate(candidate, image, identity, options)
    return (time.perf_counter() - started) / len(jobs)


def save_full_size_sdxl(out: Path, dtype) -> Path:
    build_full_size_sdxl().to(dtype).save_pretrained(out, safe_serialization=True)
    return out


def build_full_size_sdxl():
    """A random-weight SDXL pipeline with the real model's component configs (2.6B UNet)."""
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from headshot.families.tiny import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()  # tokenisation costs nothing next to the UNet
    vocab = len(tokenizer)

    def encoder(hidden, layers, heads, projection):
        config = CLIPTextConfig(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
            num_attention_heads=heads, max_position_embeddings=77, projection_dim=1280, hidden_act="gelu",
            bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
        )  # fmt: skip
        return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)

    unet = full_size_sdxl_unet()
    vae = AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
        sample_size=1024, scaling_factor=0.13025,
    )  # fmt: skip
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=encoder(768, 12, 12, projection=False),
        text_encoder_2=encoder(1280, 32, 20, projection=True),
        tokenizer=tokenizer,
        tokenizer_2=build_tiny_tokenizer(),
        unet=unet,
        scheduler=EulerDiscreteScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            timestep_spacing="leading",
            steps_offset=1,
        ),  # fmt: skip
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--full-sdxl", action="store_true", help="CUDA only: full-size SDXL, 1024x1024, 30 steps"
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--images", type=int, default=24, help="images per round (two variations x seeds)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1: tiny models are fastest)"
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    args.device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} CPU thread(s)")
    with tempfile.TemporaryDirectory(prefix="bench-generate-") as tmp:
        work = Path(tmp)
        if args.full_sdxl:
            if args.device != "cuda":
                sys.exit(
                    "--full-sdxl needs a CUDA GPU (full-size SDXL at 1024x1024: minutes per image on CPU)"
                )
            args.steps, args.size, args.dtype = args.steps or 30, 1024, "fp16"
            args.rounds, args.images, args.batch_size = min(args.rounds, 3), 4, 1
            model = save_full_size_sdxl(work / "full-sdxl", torch.float16)
            torch.cuda.reset_peak_memory_stats()
            compare("sdxl", model, work, args)
            return
        from headshot.training.tiny_model import save_tiny_model

        args.steps, args.size, args.dtype = args.steps or 30, None, "fp32"  # the templates' steps
        for family in ("sd15", "sdxl"):
            compare(family, save_tiny_model(family, work / f"tiny-{family}"), work, args)


if __name__ == "__main__":
    main()
