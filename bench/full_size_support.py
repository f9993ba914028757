"""Real-size models with random weights, trained and rendered through headshot's own code.

Shared by bench/full_size_cpu.py (one model on this 2-core CPU) and bench/gpu_acceptance.py
(three models on one GPU). A model is its shipped full-size configs (configs/full-size/, no
weights) or, with `tiny`, the family's tiny model: the same code runs both. Why each piece:

- the denoiser and the VAE are built on the meta device in the run's dtype and only then
  given memory (`to_empty`) and a cheap deterministic init, so a 4 B model in bf16 costs
  its 8 GB once, never a float32 copy first;
- the text encoders are never built: training reads prompt embeddings of the shape the
  family's encoders give (memory_plan.training_inputs, from the configs), as a run with
  cached prompt embeddings does, and the render is given the same embeddings;
- training is headshot's own loop (trainer.train) on a TrainingRun set up as finetune.py
  sets one up: add_lora_adapters, gradient checkpointing, the accelerator's bf16 autocast,
  AdamW, the family's objective, predict and loss;
- the plan is `headshot plan`'s (plan.make_plan) for the same settings.
"""

from __future__ import annotations

import gc
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass
class Settings:
    resolution: int
    steps: int = 2
    render_steps: int = 2
    rank: int = 16
    batch_size: int = 1
    max_sequence_length: int | None = 64  # None: a family without the option (SD)
    quantize_base: str = "none"
    gradient_checkpointing: bool = True
    guidance: float | None = (
        None  # None: real classifier-free guidance (5.0) where the family renders with it
    )


def model_folder(name: str, tiny: bool, scratch: Path) -> Path:
    """A diffusers folder for the shipped full-size configs `name` (configs only), or with `tiny`
    the tiny model of the same family (saved with its small weights; only its configs are used).
    A diffusers folder's path as `name` is used as it is (its configs; the tests' tiny models)."""
    from headshot.families import family_of_folder
    from headshot.full_size import shipped, write_config_folder

    if is_model_folder(name):
        return Path(name)
    folder = write_config_folder(shipped(name), Path(scratch) / name)
    if not tiny:
        return folder
    family = family_of_folder(folder)
    tiny_folder = Path(scratch) / f"{name}-tiny"
    family.tiny(0).save_pretrained(tiny_folder)
    return tiny_folder


def is_model_folder(name: str) -> bool:
    return (Path(name) / "model_index.json").is_file()


def add_run_arguments(parser, *, steps: int, tiny: str, defaults: str) -> None:
    """The options both benches take (a model's size, steps, LoRA rank, prompt tokens);
    `defaults` says what each script's `run_settings` fills in for those not given."""
    parser.epilog = f"Not given: {defaults}."
    parser.add_argument("--tiny", action="store_true", help=tiny)
    parser.add_argument("--resolution", type=int, help="image side")
    parser.add_argument("--steps", type=int, default=steps, help="optimizer steps")
    parser.add_argument("--render-steps", type=int, help="sampling steps of the render")
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--max-sequence-length", type=int, help="prompt tokens of the FLUX families")


def run_settings(args, name: str, folder: Path, family, full: dict, tiny: dict, **extra) -> Settings:
    """Settings from `add_run_arguments`' options: what was not given comes from `full`
    (resolution, render_steps, max_sequence_length) or, for a tiny model or a model folder
    given by path, from `tiny` (render_steps, max_sequence_length) at the model's own size."""
    own_size = args.tiny or is_model_folder(name)
    defaults = {**full, **tiny, "resolution": family.resolution_from_folder(folder)} if own_size else full
    flow = family.objective == "flow"
    return Settings(
        resolution=args.resolution or defaults["resolution"],
        steps=args.steps,
        render_steps=args.render_steps or defaults["render_steps"],
        rank=args.rank,
        max_sequence_length=(args.max_sequence_length or defaults["max_sequence_length"]) if flow else None,
        **extra,
    )


@torch.no_grad()
def deterministic_init(module: torch.nn.Module, seed: int) -> None:
    """Weights uniform in +-1/sqrt(fan_in) (torch's default scale), norms' weights 1, biases 0,
    batch-norm statistics (0, 1): finite activations through any depth, no float32 copy."""
    generator = None
    for name, parameter in module.named_parameters():
        if generator is None:
            generator = torch.Generator(device=parameter.device).manual_seed(seed)
        if parameter.ndim >= 2:
            bound = 1 / math.sqrt(parameter[0].numel())
            parameter.uniform_(-bound, bound, generator=generator)
        elif name.endswith("bias"):
            parameter.zero_()
        else:
            parameter.fill_(1.0)
    for name, buffer in module.named_buffers():
        buffer.fill_(1 if name.endswith("running_var") else 0)


def materialise(folder: Path, name: str, dtype, device: str, seed: int = 0) -> torch.nn.Module:
    """Component `name` of `folder`, built on meta in `dtype`, then allocated once on `device`."""
    from headshot import memory_plan as mp
    from headshot.full_size import meta_component

    library, class_name = mp.components(folder)[name]
    module = meta_component(folder, name, library, class_name, dtype).to_empty(device=device)
    deterministic_init(module, seed)
    return module.requires_grad_(False).eval()


def build_pipeline(folder: Path, family, dtype, device: str):
    """The family's pipeline with the denoiser, VAE and scheduler and no text encoders."""
    import inspect

    import diffusers

    from headshot import memory_plan as mp
    from headshot.bounded_io import read_json_object

    parts: dict = {name: None for name in mp.components(folder)}
    for name in (family.denoiser, "vae"):
        parts[name] = materialise(folder, name, dtype, device)
    scheduler_class = getattr(diffusers, mp.components(folder)["scheduler"][1])
    parts["scheduler"] = scheduler_class.from_config(scheduler_class.load_config(Path(folder) / "scheduler"))
    accepted = inspect.signature(family.pipeline_class.__init__).parameters
    index = read_json_object(Path(folder) / "model_index.json", "a diffusers model_index.json")
    options = {key: value for key, value in index.items() if key in accepted and not isinstance(value, list)}
    if "add_watermarker" in accepted:
        options["add_watermarker"] = False
    parts = {name: value for name, value in parts.items() if name in accepted}
    pipeline = family.pipeline_class(**parts, **options)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def finetune_config(folder: Path, settings: Settings):
    from headshot.training.finetune_config import FinetuneConfig

    return FinetuneConfig(
        base_model=str(folder),
        steps=settings.steps,
        batch_size=settings.batch_size,
        rank=settings.rank,
        prior_preservation=False,
        gradient_checkpointing=settings.gradient_checkpointing,
        mixed_precision="bf16",
        quantize_base=settings.quantize_base,
        validation_steps=0,
        **_sequence_length(settings),
    )


def _sequence_length(settings: Settings) -> dict:
    return (
        {} if settings.max_sequence_length is None else {"max_sequence_length": settings.max_sequence_length}
    )


def cached_inputs(folder: Path, family, config, resolution: int, dtype, device: str):
    """Random latents and prompt embeddings of the shapes the family's VAE and text encoders give."""
    from headshot import memory_plan as mp

    latents, prompts, time_ids = mp.training_inputs(
        folder, mp.components(folder), family, config, resolution, dtype, device
    )
    generator = torch.Generator(device=device).manual_seed(0)
    for tensor in (latents, prompts.hidden, prompts.pooled):
        if tensor is not None:
            tensor.normal_(generator=generator)
    if time_ids.numel():  # SDXL's micro-conditioning: the real numbers, not noise
        time_ids = family.time_ids((resolution, resolution), resolution).reshape(1, -1).to(device, dtype)
    return latents, prompts, time_ids


def train_steps(pipeline, folder: Path, family, config, resolution: int, device: str, say=print):
    """`config.steps` optimizer steps of headshot's training loop; the TrainingState."""
    from headshot.training.accelerator import make_accelerator, release_accelerator, weight_dtype
    from headshot.training.adapters import add_lora_adapters
    from headshot.training.checkpoints import TrainingState
    from headshot.training.data import LatentSet
    from headshot.training.trainer import (
        Prompts,
        TrainingRun,
        make_lr_scheduler,
        make_optimizer,
        train,
        trainable_parameters,
    )

    accelerator = make_accelerator(config)
    try:
        dtype = weight_dtype(accelerator)
        trained = add_lora_adapters(pipeline, config, config.seed, family)
        if config.gradient_checkpointing:
            trained[0].enable_gradient_checkpointing()
        optimizer = make_optimizer(config, trained[0], [])
        lr_scheduler = make_lr_scheduler(config, optimizer)
        denoiser, optimizer = accelerator.prepare(trained[0], optimizer)
        latents, prompts, time_ids = cached_inputs(folder, family, config, resolution, dtype, device)
        masks = torch.ones(len(latents), 1, *latents.shape[-2:], device=device)
        run = TrainingRun(
            config=config,
            accelerator=accelerator,
            family=family,
            denoiser=denoiser,
            trainable=trainable_parameters(trained),
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            objective=family.training_objective(pipeline, config),
            instances=LatentSet(latents, masks, time_ids),
            classes=None,
            prompts=Prompts(family, _first(prompts), None),
            on_step_end=lambda state, logs, stopping: None,
        )

        def progress(state, logs):
            say(f"  step {state.step}: loss {logs['loss']:.4f}, {state.step_seconds[-1]:.1f} s")

        state = train(run, TrainingState(), progress)
        state.lora_parameters = sum(p.numel() for p in run.trainable)  # what the plan must have counted
        # prepare() patched the forward (autocast, float32 outputs): restore the model's own
        accelerator.unwrap_model(denoiser, keep_fp32_wrapper=False)
        del run, optimizer, lr_scheduler, denoiser
    finally:
        release_accelerator()
    gc.collect()
    # As `generate` loads the exported LoRA: in the pipeline's dtype (it trained in float32).
    torch.nn.Module.to(family.denoiser_of(pipeline), dtype)
    return state, _first(prompts)


def _first(prompts):
    from headshot.families.base import PromptEmbeddings

    return PromptEmbeddings(prompts.hidden[:1], None if prompts.pooled is None else prompts.pooled[:1])


def render(pipeline, family, prompts, settings: Settings, device: str) -> float:
    """Seconds for one image of `settings.resolution` px in `settings.render_steps` steps from the
    cached prompt embeddings (a negative-prompt family: true guidance against zero embeddings)."""
    guidance = (
        settings.guidance if settings.guidance is not None else (5.0 if family.negative_prompts else 1.0)
    )
    call = {"prompt_embeds": prompts.hidden}
    if prompts.pooled is not None:
        call["pooled_prompt_embeds"] = prompts.pooled
    if family.negative_prompts or guidance > 1:
        call["negative_prompt_embeds"] = torch.zeros_like(prompts.hidden)
        if prompts.pooled is not None:
            call["negative_pooled_prompt_embeds"] = torch.zeros_like(prompts.pooled)
    if "max_sequence_length" in _call_parameters(pipeline):
        call["max_sequence_length"] = prompts.hidden.shape[1]
    synchronize(device)
    started = time.perf_counter()
    with torch.inference_mode():
        image = pipeline(
            **call,
            height=settings.resolution,
            width=settings.resolution,
            num_inference_steps=settings.render_steps,
            guidance_scale=guidance,
            generator=torch.Generator(device="cpu").manual_seed(0),
            output_type="pil",
        ).images[0]
    synchronize(device)
    assert image.size == (settings.resolution, settings.resolution), image.size
    return time.perf_counter() - started


def _call_parameters(pipeline):
    import inspect

    return inspect.signature(type(pipeline).__call__).parameters


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def planned(folder: Path, settings: Settings, device: str) -> dict:
    """`headshot plan`'s object for the same model and settings (the plan.make_plan the command calls)."""
    from headshot.plan import PlanRequest, make_plan

    return make_plan(
        PlanRequest(
            model=str(folder),
            resolution=settings.resolution,
            batch_size=settings.batch_size,
            rank=settings.rank,
            quantize_base=settings.quantize_base,
            gradient_checkpointing=settings.gradient_checkpointing,
            mixed_precision="bf16",
            device=device,
            prior_preservation=False,
            max_sequence_length=settings.max_sequence_length,
        )
    )


def _text_encoders(stage: dict) -> float:
    return sum(size for name, size in stage["parts"].items() if name.startswith("weights.text_encoder"))


def planned_training(plan: dict) -> float:
    """GiB the plan counts for what these runs hold while training: every weight but the text
    encoders' (the prompts are cached), the LoRA state, the activations and the backward pass's
    working copy. On a CPU that is the plan's training peak less the text encoders; on a GPU its
    training-steps term plus the VAE (kept resident here for the render)."""
    parts = plan["training"]["parts"]
    held = sum(size for name, size in parts.items() if name != "validation_sample")  # no samples here
    return round(held - _text_encoders(plan["training"]), 3)


def planned_render(plan: dict) -> float:
    """GiB of the plan's render peak less the text encoders (the render is given the embeddings)."""
    return round(plan["render"]["peak_gib"] - _text_encoders(plan["render"]), 3)
