"""Render candidates: base model + the subject's LoRA, loaded once, templates x seeds in batches.

Every candidate gets its own `torch.Generator`, so its pixels depend on its seed and
template only, not on which other candidates share its batch (or its process). Each
is written atomically to `renders/<template>/<stem>.png` and then its JSON sidecar; a
candidate counts as done only when both exist and agree, so a re-run skips finished
work and redoes whatever an interruption left half-done.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from headshot.bounded_io import read_json
from headshot.errors import HeadshotError
from headshot.families import get_family
from headshot.models.loading import LoadedModel, load_base_model, model_source
from headshot.models.model_spec import resolve_base_model
from headshot.pipelines.generate_config import GenerateConfig, PerformanceOptions
from headshot.pipelines.refine import FaceRefiner
from headshot.pipelines.render_precision import choose_precision, plan_render
from headshot.pipelines.templates import SAMPLERS, RenderJob
from headshot.records import atomic_save_image, atomic_write_json, portable_record, sha256_file
from headshot.training.training_record import TrainingRecord

console = Console(stderr=True, soft_wrap=True)
ADAPTER = "subject"
# Sidecar fields that must match for an existing candidate to be reused.
_REUSE_KEYS = (
    "prompt",
    "negative_prompt",
    "seed",
    "sampler",
    "steps",
    "guidance",
    "size",
    "lora_scale",
    "max_sequence_length",
    "dtype",
    "base_model_sha256",
    "lora_sha256",
    "refine",
)


@dataclass
class Renderer:
    """A loaded pipeline with the subject's LoRA, ready to render jobs of any template."""

    loaded: LoadedModel
    record: TrainingRecord
    base_model_sha256: str
    lora_sha256: str
    device: str
    dtype_name: str
    steps_override: int | None = None
    size_override: int | None = None
    process_index: int = 0  # which accelerate process rendered it, for the run record
    refiner: FaceRefiner | None = None  # the face-detail pass, when `refine.enabled`
    _schedulers: dict = field(default_factory=dict)
    _scale: float | None = None

    @property
    def pipeline(self):
        return self.loaded.pipeline

    def settings(self, job: RenderJob) -> dict:
        """Everything that decides a candidate's pixels, as written to its sidecar."""
        prompt, negative = job.prompts(self.record.identifier, self.record.class_noun)
        template = job.template
        family = self.loaded.family
        sampler, steps, guidance = template.settings_for(family)
        return {
            "template": template.name,
            "variant": dict(job.variant),
            "seed": job.seed,
            "prompt": prompt,
            "negative_prompt": negative if family.negative_prompts else None,
            "sampler": sampler,
            "scheduler": SAMPLERS[sampler],
            "steps": self.steps_override or steps,
            "guidance": guidance,
            "size": self.size_override or template.size or self.loaded.resolution,
            "lora_scale": template.lora_scale,
            "max_sequence_length": self.record.max_sequence_length,  # the training prompts' length
            "dtype": self.dtype_name,
            "family": self.loaded.family.name,
            "base_model": self.record.base_model,
            "base_model_sha256": self.base_model_sha256,
            "lora_sha256": self.lora_sha256,
            "identifier": self.record.identifier,
            "class_noun": self.record.class_noun,
            "refine": self.refiner.settings() if self.refiner is not None else None,
        }

    def prompt_arguments(self, settings: dict) -> dict:
        """The pipeline arguments that come from one candidate's settings (prompts, steps,
        guidance, as the family passes them): the face-detail pass reuses them."""
        prompting = (settings["prompt"], settings["negative_prompt"], settings["guidance"])
        return {
            **self.loaded.family.render_kwargs(*prompting, settings["max_sequence_length"]),
            "num_inference_steps": settings["steps"],
        }

    def render(self, jobs: list[RenderJob]) -> list:
        """One pipeline call for jobs of one template; returns PIL images in job order."""
        import torch

        settings = [self.settings(job) for job in jobs]
        first = settings[0]
        self._use_sampler(first["sampler"])
        self._use_lora_scale(first["lora_scale"])
        generators = [torch.Generator("cpu").manual_seed(job.seed) for job in jobs]
        with torch.inference_mode():
            # The family says how prompts and guidance are passed (FLUX: embedded guidance, no
            # negative prompt); one template's jobs share steps, guidance and size.
            prompting = self.loaded.family.render_kwargs(
                [s["prompt"] for s in settings], [s["negative_prompt"] for s in settings], first["guidance"],
                first["max_sequence_length"],
            )  # fmt: skip
            result = self.pipeline(
                **prompting,
                num_inference_steps=first["steps"],
                height=first["size"],
                width=first["size"],
                generator=generators,
                output_type="pil",
            )
        return list(result.images)

    def refine_faces(self, jobs: list[RenderJob], images: list) -> tuple[list, list[dict]]:
        """The face-detail pass over one rendered batch: refined images and what was done."""
        refined, results = [], []
        for job, image in zip(jobs, images):
            settings = self.settings(job)
            self._use_sampler(settings["sampler"])
            image, result = self.refiner.refine(image, self.prompt_arguments(settings), job.seed)
            refined.append(image)
            results.append(result)
        return refined, results

    def _use_sampler(self, name: str) -> None:
        import diffusers

        if name not in self._schedulers:
            base_config = self._schedulers.setdefault("_base", self.pipeline.scheduler).config
            self._schedulers[name] = getattr(diffusers, SAMPLERS[name]).from_config(base_config)
        self.pipeline.scheduler = self._schedulers[name]

    def _use_lora_scale(self, scale: float) -> None:
        if scale != self._scale:
            self.pipeline.set_adapters([ADAPTER], adapter_weights=[scale])
            self._scale = scale


def load_renderer(lora_folder: Path, record: TrainingRecord, config: GenerateConfig, device: str) -> Renderer:
    """Load the base model named in training.json (or the override) and the LoRA, once."""

    precision = choose_precision(config.performance, record, device)  # before loading: may refuse
    if precision.warning:
        console.print(f"[yellow]warning[/]: {precision.warning}")
    if config.base_model is None and record.base_model.startswith("local:"):
        raise HeadshotError(
            f"{lora_folder / 'training.json'}: the LoRA was trained on the local model folder "
            f"'{record.base_model[6:]}', whose path is not recorded; pass --base-model PATH"
        )
    spec = resolve_base_model(config.base_model or record.base_model)
    # A hub id is downloaded first, so the plan below is made from its files before loading.
    source = model_source(spec, allow_pickle=config.allow_pickle)
    local = source if (source / "model_index.json").is_file() else None
    lora_file = Path(lora_folder) / record.lora_file
    if config.performance.memory_check:
        plan_render(local, get_family(record.family), precision, lora_file, config.performance,
                    config.batch_size, device, say=console.print)  # fmt: skip
    loaded = load_base_model(
        spec, dtype=precision.dtype, allow_pickle=config.allow_pickle, quantize_base=precision.quantize_base
    )
    if loaded.family.name != record.family:
        raise HeadshotError(
            f"{lora_folder / 'training.json'}: the LoRA was trained on a {record.family} model, "
            f"but base model '{spec.source}' is {loaded.family.name}"
        )
    base_sha = loaded.fingerprint()
    if base_sha != record.base_model_sha256:
        message = (
            f"{lora_folder / 'training.json'}: base model '{spec.source}' has fingerprint "
            f"{base_sha[:12]}, but the LoRA was trained on {record.base_model_sha256[:12]}"
        )
        if config.base_model_mismatch == "refuse":
            raise HeadshotError(
                message + "; point base_model at the training model, or set "
                "base_model_mismatch: warn to render anyway"
            )
        console.print(f"[yellow]warning[/]: {message}; rendering anyway (base_model_mismatch: warn)")
    lora_sha = sha256_file(lora_file)
    if lora_sha != record.lora_sha256:
        raise HeadshotError(
            f"{lora_file}: its SHA-256 {lora_sha[:12]} differs from training.json's "
            f"{record.lora_sha256[:12]}; the LoRA changed after training"
        )
    try:
        loaded.pipeline.load_lora_weights(
            str(lora_folder), weight_name=record.lora_file, adapter_name=ADAPTER
        )
    except (ValueError, OSError, KeyError, RuntimeError) as exc:
        raise HeadshotError(f"{lora_file}: could not load the LoRA into {spec.source}: {exc}") from None
    _apply_performance(loaded, config.performance, device)
    renderer = Renderer(loaded, record, base_sha, lora_sha, device, precision.name, config.steps, config.size)
    if config.refine.enabled:
        renderer.refiner = FaceRefiner(loaded.pipeline, loaded.resolution, config.refine)
    return renderer


def _apply_performance(loaded: LoadedModel, options: PerformanceOptions, device: str) -> None:
    pipeline = loaded.pipeline
    if options.attention == "sliced":
        pipeline.enable_attention_slicing()
    if options.vae_tiling:
        pipeline.vae.enable_tiling()
    if options.cpu_offload != "none":
        if not device.startswith("cuda"):
            raise HeadshotError(
                "performance.cpu_offload: needs a CUDA GPU (it moves models onto it on demand)"
            )
        if options.cpu_offload == "model":
            pipeline.enable_model_cpu_offload(device=device)
        else:
            pipeline.enable_sequential_cpu_offload(device=device)
    else:
        pipeline.to(device)
    if options.compile:
        loaded.family.denoiser_of(pipeline).compile()


def candidate_paths(renders: Path, job: RenderJob) -> tuple[Path, Path]:
    png = Path(renders) / job.template.name / f"{job.stem}.png"
    return png, png.with_suffix(".json")


def read_finished(renders: Path, job: RenderJob, expected: dict) -> dict | None:
    """The sidecar of a finished candidate made with `expected` settings, else None."""
    png, sidecar = candidate_paths(renders, job)
    if not (png.is_file() and sidecar.is_file()):
        return None
    try:
        record = read_json(sidecar)
    except HeadshotError:
        return None  # damaged or hostile: rendered again
    if not isinstance(record, dict) or any(record.get(k) != expected[k] for k in _REUSE_KEYS):
        return None
    if record.get("png_sha256") != sha256_file(png):
        return None
    return record


@dataclass
class RenderSummary:
    rendered: int = 0
    skipped: int = 0
    stopped_early: bool = False  # max_images reached with work left
    seconds: float = 0.0


class ImagesPerSecond(ProgressColumn):
    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} images/s" if speed else "- images/s", style="progress.data.speed")


def render_jobs(
    renderer: Renderer,
    jobs: list[RenderJob],
    renders: Path,
    *,
    batch_size: int,
    max_images: int | None = None,
    show_progress: bool = True,
) -> RenderSummary:
    """Render every job not already finished, in batches of one template each."""
    summary = RenderSummary()
    pending = []
    for job in jobs:
        if read_finished(renders, job, renderer.settings(job)) is None:
            pending.append(job)
        else:
            summary.skipped += 1
    if max_images is not None and len(pending) > max_images:
        pending, summary.stopped_early = pending[:max_images], True
    started = time.perf_counter()
    columns = (
        TextColumn("rendering"),
        BarColumn(),
        MofNCompleteColumn(),
        ImagesPerSecond(),
        TimeElapsedColumn(),
    )
    # Files are written on a background thread while the next batch denoises (PNG
    # encoding and fsync would otherwise add ~10 ms per image); one batch at a time is
    # in flight, and leaving this block, even on Ctrl-C, waits for it to be on disk.
    with (
        Progress(*columns, console=console, disable=not show_progress) as progress,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-renders") as writer,
    ):
        task = progress.add_task("render", total=len(pending))
        in_flight = None
        for batch in _batches(pending, batch_size):
            batch_started = time.perf_counter()
            images = renderer.render(batch)
            refined = [None] * len(batch)
            if renderer.refiner is not None:
                images, refined = renderer.refine_faces(batch, images)
            per_image = (time.perf_counter() - batch_started) / len(batch)
            records = [
                {
                    **renderer.settings(job),
                    "refine_result": result,
                    "process": renderer.process_index,
                    "batch_size": len(batch),
                }
                for job, result in zip(batch, refined)
            ]
            if in_flight is not None:
                in_flight.result()  # re-raises a failed write here, in the caller's thread
            in_flight = writer.submit(_write_batch, renders, batch, images, records, per_image)
            in_flight.add_done_callback(lambda _, n=len(batch): progress.advance(task, n))
            summary.rendered += len(batch)
        if in_flight is not None:
            in_flight.result()
    summary.seconds = time.perf_counter() - started
    return summary


def _batches(jobs: list[RenderJob], batch_size: int):
    """Consecutive jobs of one template (same sampler, steps, size), at most batch_size each."""
    batch: list[RenderJob] = []
    for job in jobs:
        if batch and (len(batch) == batch_size or job.template.name != batch[0].template.name):
            yield batch
            batch = []
        batch.append(job)
    if batch:
        yield batch


def _write_batch(renders: Path, jobs: list[RenderJob], images: list, records: list[dict], seconds: float):
    for job, image, record in zip(jobs, images, records):
        png, sidecar = candidate_paths(renders, job)
        # The PNG first, then the sidecar that vouches for it: a crash in between leaves
        # a PNG without a sidecar, which the next run renders again.
        atomic_save_image(png, image)
        record = portable_record(record, Path(renders).resolve().parent)  # no absolute paths
        atomic_write_json(
            sidecar, {**record, "png_sha256": sha256_file(png), "wall_time_s": round(seconds, 4)}
        )
