"""`headshot finetune`: dataset folder -> lora folder. Sets up a run, trains, exports.

Entry point: `finetune_dataset(dataset_folder, config, resume=, allow_pickle=)`.
Runs alone or under `accelerate launch --num_processes N` (data parallel); only the
main process writes files.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from headshot.busy import subject_busy
from headshot.dataset_record import DatasetRecord
from headshot.errors import HeadshotError, Interrupted
from headshot.families import get_family
from headshot.layout import SubjectLayout
from headshot.models.loading import LoadedModel, fingerprint_path, load_base_model, model_source
from headshot.models.model_spec import resolve_base_model
from headshot.quantize import base_precision, check_quantization
from headshot.records import library_versions, portable_record, sha256_file
from headshot.storage import StagedFiles, repair_files, run_staged
from headshot.terminal import shown_path
from headshot.training import checkpoints as ckpt
from headshot.training.accelerator import (
    device_type,
    make_accelerator,
    planned_dtype,
    release_accelerator,
    weight_dtype,
)
from headshot.training.adapters import add_lora_adapters, load_trainable_state, trainable_state
from headshot.training.data import dataset_sha256, load_instance_images, read_training_dataset
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.frozen_inputs import frozen_inputs as encode_frozen_inputs
from headshot.training.frozen_inputs import plan_inputs
from headshot.training.memory_check import PeakWatch, memory_record, plan_finetune
from headshot.training.model_fit import check_dataset_fits, family_on_disk
from headshot.training.monitor import Monitor, console
from headshot.training.selection import choose as choose_checkpoint
from headshot.training.trainer import (
    Prompts,
    TrainingRun,
    adam_8bit,
    make_lr_scheduler,
    make_optimizer,
    train,
    trainable_parameters,
)
from headshot.training.training_record import TrainingRecord, tail_mean, write_training_record


@dataclass
class Session:
    """A run set up and ready to train: what `train` needs, and what the export needs after."""

    config: FinetuneConfig
    dataset: DatasetRecord
    dataset_sha256: str
    layout: SubjectLayout
    loaded: LoadedModel
    model_sha256: str
    accelerator: object
    monitor: Monitor
    run: TrainingRun
    state: ckpt.TrainingState
    named: dict  # the trained modules by name: what a checkpoint's tensors load into
    memory: object = None  # memory_plan.MemoryEstimate, or None where it could not be made
    watch: object = None  # memory_check.PeakWatch: the measured peak for training.json
    measured_peak: int | None = None

    def close(self) -> None:
        self.monitor.close()
        release_accelerator()


def finetune_dataset(
    dataset_folder: Path,
    config: FinetuneConfig,
    *,
    resume: bool | Literal["auto"] = False,
    allow_pickle: bool = False,
) -> TrainingRecord | None:
    """Train a LoRA on a prepared dataset; returns the record written to lora/training.json.

    Returns None when the run stopped early on purpose (`stop_after_steps`): the
    checkpoint is written and running again (resume True or "auto") continues it.
    Ctrl-C raises `Interrupted`, saying which checkpoint is kept.
    """
    layout = SubjectLayout.of_stage_folder(dataset_folder)
    with subject_busy(layout.root, "finetune"):
        try:
            return _finetune_dataset(dataset_folder, config, resume, allow_pickle)
        except KeyboardInterrupt:
            raise Interrupted(_kept_on_interrupt(layout, config)) from None


def _kept_on_interrupt(layout: SubjectLayout, config: FinetuneConfig) -> str:
    latest = ckpt.latest_checkpoint(layout.lora / "checkpoints")
    step = ckpt.checkpoint_step(latest) if latest is not None else None
    if step is None:
        when = f"every {config.checkpoint_steps} steps" if config.checkpoint_steps else "at the end"
        return f"no checkpoint yet (one is written {when}); the earlier LoRA is unchanged"
    return (
        f"checkpoint at step {step} of {config.steps} in {shown_path(latest)}; the same command "
        "continues from it (steps after it are done again, with the same result)"
    )


def _finetune_dataset(dataset_folder, config, resume, allow_pickle) -> TrainingRecord | None:
    started = time.perf_counter()
    session = open_session(dataset_folder, config, resume=resume, allow_pickle=allow_pickle)
    try:
        carried_wall_time = session.state.wall_time_s
        with session.monitor.progress(session.state) as progress:
            state = train(session.run, session.state, progress)
        session.measured_peak = session.watch.peak()  # set-up and training; not the face scoring after
        session.accelerator.wait_for_everyone()
        if state.step < config.steps:
            session.monitor.say(
                f"stopped after step {state.step} of {config.steps}; the same command continues"
            )
            return None
        if not session.accelerator.is_main_process:
            return None
        session.monitor.validate(state.step, final=True)
        state.wall_time_s = carried_wall_time + time.perf_counter() - started
        state.num_processes = session.accelerator.num_processes
        return _export(session, state)
    finally:
        session.close()


def open_session(
    dataset_folder: Path,
    config: FinetuneConfig,
    *,
    resume: bool | Literal["auto"] = False,
    allow_pickle: bool = False,
) -> Session:
    """Check the inputs, load the model, cache class images, latents and prompts, add LoRA, resume."""
    dataset_folder = Path(dataset_folder)
    dataset = read_training_dataset(dataset_folder)
    layout = SubjectLayout.of_stage_folder(dataset_folder)
    spec = resolve_base_model(config.base_model)
    # Before any download or loading: what the spec says of the family, the options, the backends.
    check_dataset_fits(dataset, dataset_folder, config.base_model, spec.family)
    if spec.family is not None:
        get_family(spec.family).check_training_options(config, "finetune")
    check_quantization(config.quantize_base, device_type())
    if config.use_8bit_adam:
        adam_8bit()
    source = model_source(spec, allow_pickle=allow_pickle)  # a hub id is downloaded first
    known = spec.family or family_on_disk(str(source))
    check_dataset_fits(dataset, dataset_folder, config.base_model, known)
    if known is not None:  # before loading: an option the family cannot use is an error now
        get_family(known).check_training_options(config, "finetune")
    instance_images = load_instance_images(dataset_folder, dataset)
    inputs = None
    if known is not None:  # which cached latents and prompts exist decides what is loaded
        inputs = plan_inputs(
            config, instance_images, fingerprint_path(source), get_family(known), planned_dtype(config),
            dataset.resolution,
        )  # fmt: skip
    frozen = inputs.frozen_parts_loaded(config) if inputs is not None else "training"
    memory = plan_finetune(
        spec, source, known, config, dataset.resolution, device_type(), console.print, frozen
    )
    accelerator = make_accelerator(config)
    try:
        main = accelerator.is_main_process
        watch = PeakWatch(device_type())
        loaded = load_base_model(
            spec,
            dtype=weight_dtype(accelerator),
            allow_pickle=allow_pickle,
            quantize_base=config.quantize_base,
            defer_frozen=inputs is not None and not inputs.needs_frozen_parts(config),
        )
        check_dataset_fits(dataset, dataset_folder, config.base_model, loaded.family.name, loaded.resolution)
        family = loaded.family
        family.check_training_options(config, "finetune")
        pipeline = loaded.pipeline
        pipeline.to(accelerator.device)
        model_sha256 = loaded.fingerprint()
        data_sha256 = dataset_sha256(dataset_folder, dataset)
        if main:
            repair_files(layout.lora, say=lambda message: console.print(f"[yellow]{message}[/]"))
        monitor = Monitor(layout.lora, config, dataset, loaded, enabled=main)
        if inputs is None:
            inputs = plan_inputs(
                config, instance_images, model_sha256, family, loaded.dtype, loaded.resolution
            )
        frozen_inputs = encode_frozen_inputs(inputs, loaded, config, accelerator, monitor)
        pipeline = loaded.pipeline  # the full one, when set-up needed the text encoders and VAE

        trained = add_lora_adapters(pipeline, config, config.seed, family)
        if config.gradient_checkpointing:
            trained[0].enable_gradient_checkpointing()
            for encoder in trained[1:]:
                encoder.gradient_checkpointing_enable()
        named = dict(zip((family.denoiser, "text_encoder", "text_encoder_2"), trained))
        optimizer = make_optimizer(config, trained[0], trained[1:])
        lr_scheduler = make_lr_scheduler(config, optimizer)
        *prepared, optimizer = accelerator.prepare(*trained, optimizer)

        settings = portable_record(
            {**config.result_settings(), "dataset_sha256": data_sha256, "base_model_sha256": model_sha256},
            layout.root,
        )  # as state.json records them: no absolute paths
        state = _resume_or_start(settings, resume, named, optimizer, lr_scheduler, main, monitor)
        accelerator.wait_for_everyone()
        run = TrainingRun(
            config=config,
            accelerator=accelerator,
            family=family,
            denoiser=prepared[0],
            trainable=trainable_parameters(trained),
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
            objective=family.training_objective(pipeline, config),
            instances=frozen_inputs.instances,
            classes=frozen_inputs.classes,
            prompts=Prompts(
                family,
                frozen_inputs.instance_prompt,
                frozen_inputs.class_prompt,
                prepared[1:],
            ),
            on_step_end=lambda s, logs, stop: _on_step_end(s, logs, stop, run, named, settings, monitor),
        )
    except BaseException:
        release_accelerator()
        raise
    return Session(
        config=config,
        dataset=dataset,
        dataset_sha256=data_sha256,
        layout=layout,
        loaded=loaded,
        model_sha256=model_sha256,
        accelerator=accelerator,
        monitor=monitor,
        run=run,
        state=state,
        memory=memory,
        watch=watch,
        named=named,
    )


def _export(session: Session, state) -> TrainingRecord:
    config, monitor, out = session.config, session.monitor, session.layout.lora
    scale = config.lora_alpha / config.rank
    # The LoRA, its kohya export and training.json are staged and moved in as one set, so a
    # kill never leaves a new LoRA beside the old record (storage.StagedFiles).
    record = run_staged(StagedFiles(out), lambda staging: _export_files(session, state, staging, scale))
    monitor.say(f"LoRA written to {out / record.lora_file} (+ {record.kohya_file} for ComfyUI and others)")
    return record


def _export_files(session: Session, state, out: Path, scale: float) -> TrainingRecord:
    config, layout, loaded, monitor = session.config, session.layout, session.loaded, session.monitor
    pipeline, dataset = loaded.pipeline, session.dataset
    selection = choose_checkpoint(monitor.history, config.select, state.step)
    monitor.say(f"exporting step {selection.step}: {selection.reason}")
    if selection.step != state.step:  # both files come from the chosen step's tensors
        load_trainable_state(session.named, monitor.best.tensors_for(selection.step), monitor.best.folder)
    lora_file, kohya_file = loaded.family.export(
        pipeline, out, layout.subject, config.train_text_encoder, scale
    )
    record = TrainingRecord(
        subject=layout.subject,
        identifier=config.identifier,
        class_noun=config.class_noun,
        instance_prompt=config.instance_prompt,
        class_prompt=config.class_prompt,
        base_model=config.base_model,
        base_model_sha256=session.model_sha256,
        family=loaded.family.name,
        resolution=loaded.resolution,
        max_sequence_length=loaded.family.prompt_length(config),
        lora_sha256=sha256_file(lora_file),
        kohya_file=kohya_file.relative_to(out).as_posix(),
        dataset_sha256=session.dataset_sha256,
        train_text_encoder=config.train_text_encoder,
        rank=config.rank,
        lora_alpha=config.lora_alpha,
        steps=state.step,
        final_loss=state.losses[-1] if state.losses else None,
        mean_loss_last_10pct=tail_mean(state.losses),
        wall_time_s=round(state.wall_time_s, 3),
        num_instance_images=len(dataset.accepted),
        num_class_images=config.num_class_images if config.prior_preservation else 0,
        num_processes=state.num_processes,
        validation=monitor.final_scores(),
        quantize_base=config.quantize_base,
        base_precision=base_precision(config.quantize_base, loaded.dtype),
        memory=memory_record(session.memory, session.measured_peak, session.watch),
        selection=selection.as_record(),
        config=config.model_dump(mode="json"),
        versions=library_versions(),
    )
    write_training_record(out, record, subject_root=layout.root)
    return record


def _on_step_end(state, logs, stopping: bool, run: TrainingRun, named, settings, monitor) -> None:
    config, accelerator = run.config, run.accelerator
    monitor.log(state.step, logs)
    due_checkpoint = config.checkpoint_steps and state.step % config.checkpoint_steps == 0
    due_checkpoint = due_checkpoint or state.step == config.steps  # a kill during export loses nothing
    if (due_checkpoint or stopping) and accelerator.is_main_process:
        ckpt.save_checkpoint(
            monitor.checkpoints,
            state=state,
            lora=trainable_state(named),
            optimizer=run.optimizer,
            lr_scheduler=run.lr_scheduler,
            settings=settings,
            keep=config.checkpoints_keep,
        )
    due_validation = config.validation_steps and state.step % config.validation_steps == 0
    if due_validation and state.step < config.steps and accelerator.is_main_process:
        keep = config.select == "best_likeness"
        monitor.validate(state.step, tensors=(lambda: trainable_state(named)) if keep else None)
    accelerator.wait_for_everyone()


def _resume_or_start(settings, resume, named, optimizer, lr_scheduler, main, monitor):
    """resume: True continues the latest checkpoint (same settings required); "auto" continues
    it when its settings match and starts over otherwise (`headshot finetune` and `run` by
    default); False starts over (`--restart`)."""
    latest = ckpt.latest_checkpoint(monitor.checkpoints)
    checkpoint = ckpt.read_checkpoint(latest) if resume and latest is not None else None
    changed = ckpt.changed_settings(checkpoint, settings) if checkpoint is not None else None
    if changed and resume is True:
        raise HeadshotError(
            f"{checkpoint.folder}: cannot resume with changed settings ({changed}); "
            "use the settings of the interrupted run, or start over with --restart"
        )
    if changed:
        monitor.say(f"settings changed since {checkpoint.folder} ({changed})")
        checkpoint = None
    if checkpoint is not None:
        load_trainable_state(named, checkpoint.lora, checkpoint.folder)
        ckpt.restore_training_state(checkpoint, optimizer, lr_scheduler)
        monitor.resumed_from(checkpoint)
        return checkpoint.state
    if resume and latest is None:
        monitor.say(f"no checkpoint in {monitor.checkpoints}; starting a new run")
    if latest is not None and main:
        monitor.say(f"starting a new run: removing the old checkpoints in {monitor.checkpoints}")
        shutil.rmtree(monitor.checkpoints, ignore_errors=True)
    if main:  # the replaced run's samples would read as this run's
        shutil.rmtree(monitor.out / "samples", ignore_errors=True)
    return ckpt.TrainingState()
