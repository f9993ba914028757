"""`headshot study`: one model, one prompt; its x0 trajectory, attention maps and sweeps.

The trajectory and the attention maps come from one pipeline call at the study's own
settings (seed, steps, guidance, LoRA scale); the sweep then re-renders the same prompt
over the grid of knobs. Everything lands in OUTPUTS/<subject>/audit/study/.
"""

from __future__ import annotations

import io
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console

from headshot.config import DEFAULT_BASE_MODEL
from headshot.errors import HeadshotError
from headshot.families import attention
from headshot.layout import SubjectLayout
from headshot.records import atomic_write_bytes, library_versions
from headshot.study import trajectory
from headshot.study.artifacts import artifact_metrics
from headshot.study.config import StudyConfig
from headshot.study.measures import MetricSet, measure, select_metrics, trajectory_curves
from headshot.study.model import FINAL, StudyModel, load_study_model, study_folder
from headshot.study.report import StudyOutput
from headshot.study.sweeps import plot_knob, run_sweep, sweep_knobs, sweep_steps

console = Console(stderr=True)
STUDY_FORMAT = 1


def render_image(model: StudyModel, prompt: str, negative: str, size: int, *, seed, steps, guidance_scale):
    import torch

    # A CPU generator makes the starting noise the same on every device.
    generator = torch.Generator("cpu").manual_seed(int(seed))
    prompting = model.loaded.family.render_kwargs(
        prompt, negative or None, float(guidance_scale), model.prompt_length
    )
    with torch.no_grad():
        result = model.pipeline(
            **prompting,
            num_inference_steps=int(steps),
            height=size,
            width=size,
            generator=generator,
        )
    return result.images[0]


@dataclass
class RecordedRender:
    final: Image.Image
    x0_steps: list[trajectory.X0Step]
    attention: attention.CrossAttentionRecorder | None


def run_study(config: StudyConfig, metrics: MetricSet | None = None, source: str = "config") -> Path:
    """Run the whole study; returns the folder it was written to."""
    output = StudyOutput(study_folder(config.out, config.lora, config.subject, config.outputs))
    dataset = _dataset_folder(config, source)
    if metrics is None:
        metrics = select_metrics(config.metrics, source, artifact_metrics(dataset))
    metrics = dict(metrics)
    clock = time.perf_counter()
    model = load_study_model(
        config.lora,
        config.base_model,
        device=config.device,
        dtype=config.dtype,
        allow_pickle=config.allow_pickle,
        with_checkpoints=config.sweep.enabled and config.sweep.checkpoints,
    )
    words = {
        "identifier": model.record.identifier if model.record else "sks",
        "class_noun": model.record.class_noun if model.record else "person",
    }
    prompt = _fill(config.prompt, words, source, "prompt")
    tokens = list(dict.fromkeys(_fill(token, words, source, "tokens") for token in config.tokens))
    size = config.size or model.loaded.resolution
    family = model.loaded.family
    if size % family.size_multiple:
        raise HeadshotError(
            f"{source}: field 'size': {size} is not a multiple of {family.size_multiple} "
            f"(which {family.name} models need)"
        )
    # Checked before any rendering: an unknown word stops the study at once.
    tokenizers = family.attention_tokenizers(model.pipeline)
    positions = attention.token_positions(tokenizers, prompt, tokens) if config.attention else {}
    model.use_lora(FINAL, config.lora_scale)
    console.print(f"study of a {model.family} model -> {output.folder}")

    def render(**knobs) -> Image.Image:
        return render_image(model, prompt, config.negative_prompt, size, **knobs)

    record = _header(config, model, prompt, size, list(metrics))
    record["dataset"] = str(dataset) if dataset is not None else None
    record["timings_s"]["load"] = round(time.perf_counter() - clock, 3)

    clock = time.perf_counter()
    recorded = _recorded_render(model, config, positions, size, render)
    output.image("final", recorded.final)
    record["final_metrics"] = measure(recorded.final, metrics)
    if config.trajectory:
        record["trajectory"] = _write_trajectory(output, model, config, recorded, metrics)
    if recorded.attention is not None:
        record["attention"] = _write_attention(output, recorded, positions)
    record["timings_s"]["trajectory_and_attention"] = round(time.perf_counter() - clock, 3)

    if config.sweep.enabled:
        clock = time.perf_counter()
        record["sweep"] = _write_sweep(output, model, config, metrics, render)
        record["timings_s"]["sweep"] = round(time.perf_counter() - clock, 3)

    if config.refine.enabled:
        clock = time.perf_counter()
        model.use_lora(FINAL, config.lora_scale)  # the sweep may have left another LoRA set
        record["refine"] = _write_refine(output, model, config, metrics, prompt, size)
        record["timings_s"]["refine"] = round(time.perf_counter() - clock, 3)

    output.finish(record)
    console.print(f"study written: {output.folder / 'report.html'}")
    return output.folder


def _dataset_folder(config: StudyConfig, source: str) -> Path | None:
    if config.dataset is not None:
        if not (config.dataset / "dataset.json").is_file():
            raise HeadshotError(f"{source}: field 'dataset': {config.dataset} has no dataset.json")
        return config.dataset
    if config.lora is not None:
        layout = SubjectLayout.of_stage_folder(config.lora)
    elif config.subject is not None:
        layout = SubjectLayout.for_subject(config.outputs, config.subject)
    else:
        return None
    return layout.dataset if (layout.dataset / "dataset.json").is_file() else None


def _fill(text: str, words: dict[str, str], source: str, field: str) -> str:
    try:
        return text.format(**words)
    except (KeyError, IndexError, ValueError) as exc:
        raise HeadshotError(
            f"{source}: field '{field}': bad placeholder in {text!r} ({exc}); "
            "only {identifier} and {class_noun} are filled in"
        ) from None


def _header(config: StudyConfig, model: StudyModel, prompt: str, size: int, metrics: list[str]) -> dict:
    lora = None
    if model.record is not None:
        lora = {
            "folder": str(model.lora_folder),
            "lora_sha256": model.record.lora_sha256,
            "identifier": model.record.identifier,
            "checkpoints": [
                {"label": c.label, "step": c.step, "file": str(c.file)} for c in model.checkpoints
            ],
            "skipped_checkpoints": model.skipped_checkpoints,
        }
    return {
        "format": STUDY_FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "family": model.family,
        "base_model": config.base_model or (model.record.base_model if model.record else DEFAULT_BASE_MODEL),
        "base_model_sha256": model.loaded.fingerprint(),
        "lora": lora,
        "prompt": prompt,
        "negative_prompt": config.negative_prompt,
        "seed": config.seed,
        "steps": config.steps,
        "guidance_scale": config.guidance_scale,
        "lora_scale": config.lora_scale if model.has_lora else None,
        "size": size,
        "device": model.device,
        "metrics": metrics,
        "config": config.model_dump(mode="json"),
        "versions": library_versions(),
        "timings_s": {},
    }


def _recorded_render(model, config, positions, size, render) -> RecordedRender:
    """One render at the study's settings with the x0 and attention recorders installed."""
    latent_hw = (size // model.pipeline.vae_scale_factor,) * 2
    family = model.loaded.family
    with ExitStack() as stack:
        x0 = stack.enter_context(trajectory.X0Recorder(model.pipeline.scheduler, family.x0_function()))
        recorder = None
        if config.attention:
            recorder = family.attention_recorder(model.pipeline, positions, latent_hw)
            stack.enter_context(recorder)
        final = render(seed=config.seed, steps=config.steps, guidance_scale=config.guidance_scale)
    return RecordedRender(final, x0.steps, recorder)


def _write_trajectory(output, model, config, recorded: RecordedRender, metrics) -> dict:
    family, size = model.loaded.family, recorded.final.width
    frames = trajectory.trajectory_frames(
        model.pipeline, recorded.x0_steps, lambda x0: family.latents_for_decoding(model.pipeline, x0, size)
    )
    sheet = trajectory.contact_sheet(frames, config.frame_size, config.sheet_columns)
    output.image("trajectory", sheet)
    columns = min(config.sheet_columns, len(frames))
    rows = -(-len(frames) // columns)
    curves = trajectory_curves(frames, metrics)
    settles = {name: trajectory.settle_step(values) for name, values in curves.items()}
    timesteps = [step.timestep for step in recorded.x0_steps]
    output.figure("trajectory_curves", trajectory.plot_curves(curves, timesteps, settles))
    return {
        "frames": len(frames),
        "timesteps": timesteps,
        "sheet": {
            "file": "trajectory.png",
            "size": list(sheet.size),
            "columns": columns,
            "rows": rows,
            "tile": [sheet.width // columns, sheet.height // rows],
        },
        "curves": curves,
        "settles_at_step": settles,
    }


def _write_attention(output, recorded: RecordedRender, positions: dict[str, list[int]]) -> dict:
    recorder = recorded.attention
    maps, per_step = recorder.maps(), recorder.per_step()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, maps=maps, per_step=per_step, words=np.array(recorder.words))
    atomic_write_bytes(output.folder / "attention.npz", buffer.getvalue())
    tokens = []
    for index, word in enumerate(recorder.words):
        name = f"attention/{attention.safe_file_stem(index, word)}"
        output.image(name, attention.overlay(recorded.final, maps[index]))
        peak = np.unravel_index(int(maps[index].argmax()), maps[index].shape)
        tokens.append(
            {
                "word": word,
                "positions": positions[word],
                "file": f"{name}.png",
                "peak_latent_yx": [int(peak[0]), int(peak[1])],
            }
        )
    output.figure("attention_steps", attention.plot_per_step(per_step, recorder.words))
    return {
        "file": "attention.npz",
        "maps_shape": list(maps.shape),
        "per_step_shape": list(per_step.shape),
        "tokens": tokens,
    }


def _sweep_with_progress(model, config, metrics, render):
    """The sweep under one bar: renders done of all, time left (on a terminal; the last state
    elsewhere), and its steps and where they come from."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    steps = ", ".join(str(s) for s in sweep_steps(config))
    origin = "sweep.steps" if config.sweep.steps is not None else f"from --steps {config.steps}"
    columns = (TextColumn(f"sweep (steps {steps}, {origin})"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TextColumn("time left"), TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("sweep", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return run_sweep(model, config, metrics, render, advance)


def _write_sweep(output, model, config, metrics, render) -> dict:
    entries, images = _sweep_with_progress(model, config, metrics, render)
    labels = [str(number) for number in range(1, len(images) + 1)]  # the sweep table's "#"
    sheet = trajectory.contact_sheet(images, config.frame_size, config.sheet_columns, labels)
    output.image("sweep", sheet)
    knobs = sweep_knobs(model, config)
    base = {"mode": config.sweep.mode, "guidance_scale": config.guidance_scale, "steps": config.steps}
    if model.has_lora:
        base.update(lora_scale=config.lora_scale, checkpoint=FINAL)
    for knob in knobs:
        output.figure(f"sweep_{knob}", plot_knob(entries, knob, list(metrics), base))
    return {
        "mode": config.sweep.mode,
        "knobs": knobs,
        "seeds": config.sweep.seeds or [config.seed],
        "entries": entries,
        "sheet": {"file": "sweep.png", "size": list(sheet.size), "images": len(images)},
        "plots": {knob: f"plots/sweep_{knob}.png" for knob in knobs},
    }


def _write_refine(output, model, config, metrics, prompt: str, size: int) -> dict:
    """The same seeds before and after generate's face-detail pass (refine_compare.py)."""
    from headshot.pipelines.refine import FaceRefiner
    from headshot.study import refine_compare

    refiner = FaceRefiner(model.pipeline, model.loaded.resolution, config.refine.options)
    renders = {
        seed: render_image(
            model, prompt, config.negative_prompt, size, seed=seed, steps=config.steps,
            guidance_scale=config.guidance_scale,
        )
        for seed in config.refine.seeds
    }  # fmt: skip
    family = model.loaded.family
    call = {
        **family.render_kwargs(
            prompt, config.negative_prompt or None, float(config.guidance_scale), model.prompt_length
        ),
        "num_inference_steps": int(config.steps),
    }
    record, images = refine_compare.compare(renders, refiner, call, metrics)
    for name, image in images.items():
        output.image(name, image)
    return record
