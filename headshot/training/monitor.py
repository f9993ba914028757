"""What a person watching a run sees: a rich progress bar, TensorBoard logs, validation samples.

Only the main process shows and writes anything; on the others every method is a no-op.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from headshot.bounded_io import read_json
from headshot.errors import HeadshotError
from headshot.training.selection import BestKeeper
from headshot.training.validation import SampleScore, Validator, summarize

console = Console(stderr=True)


class Monitor:
    def __init__(self, out: Path, config, dataset, loaded, *, enabled: bool):
        self.out = Path(out)
        # The LoadedModel being trained: validation samples use its LoRA as it is (and load its
        # text encoders and VAE the first time, when cached prompts and latents left them out).
        self.loaded = loaded
        self.enabled = enabled
        self.checkpoints = self.out / "checkpoints"
        self.class_images: Path | None = None
        self._writer = None
        self._history: list[SampleScore] = []
        self._total = config.steps
        self.best = BestKeeper(self.checkpoints)
        if not enabled:
            return
        from headshot.analysis.likeness import SubjectIdentity

        embeddings = [p.embedding for p in dataset.accepted if p.embedding is not None]
        steps, guidance = config.validation_sampling(loaded.family)
        self.validator = Validator(
            folder=self.out / "samples",
            prompt=config.validation_prompt,
            seeds=config.validation_seeds,
            steps=steps,
            guidance=guidance,
            resolution=dataset.resolution,
            identity=SubjectIdentity.from_embeddings(embeddings) if embeddings else None,
            # Samples choose the exported step: rendered at the length the prompts trained at.
            prompt_length=loaded.family.prompt_length(config),
        )
        if config.tensorboard:
            self._writer = _summary_writer(self.out / "logs")

    def say(self, message: str) -> None:
        if self.enabled:
            console.print(message)

    @contextlib.contextmanager
    def class_image_progress(self, count: int, folder: Path):
        with Progress(
            TextColumn("class images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, disable=not self.enabled,
        ) as bar:  # fmt: skip
            task = bar.add_task("", total=count)
            self.say(f"rendering {count} class images for prior preservation into {folder}")
            yield lambda done: bar.advance(task, done)

    @contextlib.contextmanager
    def progress(self, state):
        columns = (
            TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
        )  # fmt: skip
        with Progress(*columns, console=console, disable=not self.enabled) as bar:
            task = bar.add_task("", total=self._total, completed=state.step, status="")

            def update(state, logs):
                status = f"loss {logs['loss']:.4f}  lr {logs['lr']:.2e}"
                bar.update(task, completed=state.step, status=status)

            yield update
        if self._writer is not None:
            self._writer.flush()

    def log(self, step: int, logs: dict[str, float]) -> None:
        if self._writer is not None:
            for name, value in logs.items():
                self._writer.add_scalar(f"train/{name}", value, step)

    def validate(self, step: int, final: bool = False, tensors=None) -> None:
        """Render and score the samples of `step`; with `tensors` (a function returning the
        trainable tensors), keep them when this step now scores best (select: best_likeness)."""
        if not self.enabled:
            return
        if not self.validator.seeds:
            return  # no samples asked for: nothing is rendered, and nothing loaded for it
        scores = self.validator.run(self.loaded.full_pipeline(), step)
        self._history = [s for s in self._history if s.step != step] + scores
        self.validator.record(self._history)
        if tensors is not None:
            self.best.update(self._history, step, tensors())
        summary = summarize(scores)
        if self._writer is not None:
            for name, value in summary.items():
                self._writer.add_scalar(f"validation/{name}", value, step)
            self._writer.flush()
        faces = sum(s.face for s in scores)
        detail = f"{faces}/{len(scores)} with a face"
        if "likeness_distance" in summary:
            detail += f", likeness distance {summary['likeness_distance']:.3f}"
        self.say(f"{'final ' if final else ''}validation at step {step}: {detail} -> {self.validator.folder}")

    def resumed_from(self, checkpoint) -> None:
        self.say(f"resuming from {checkpoint.folder} (step {checkpoint.state.step})")
        samples = self.out / "samples" / "samples.json"
        if self.enabled and samples.is_file():
            try:
                earlier = [SampleScore(**item) for item in read_json(samples)]
            except (HeadshotError, ValueError, TypeError):
                earlier = []
            self._history = [s for s in earlier if s.step <= checkpoint.state.step]

    @property
    def history(self) -> list[SampleScore]:
        return list(self._history)

    def final_scores(self) -> dict:
        if not self._history:
            return {}
        last_step = max(s.step for s in self._history)
        final = [s for s in self._history if s.step == last_step]
        return {"step": last_step, "samples": len(final), **summarize(final)}

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _summary_writer(folder: Path):
    """A TensorBoard writer whose event file name carries no host name.

    TensorBoard names event files `events.out.tfevents.<time>.<host>.<pid>...` with no option
    to leave the host out, so the host name is replaced by "headshot" while the writer opens
    its file (a few microseconds; nothing else here asks for the host name meanwhile).
    """
    import socket

    from torch.utils.tensorboard import SummaryWriter

    real = socket.gethostname
    socket.gethostname = lambda: "headshot"
    try:
        return SummaryWriter(str(folder))
    finally:
        socket.gethostname = real
