"""What runs on the Ray workers: the shared-filesystem probe, the survey of finished work, and
one stage of one subject through the same entry function `headshot run` calls.

Nothing here is Ray-specific except asking which node it runs on; the runner wraps these
functions as tasks. A stage writes its effective settings to OUTPUTS/<subject>/batch/<stage>.yaml
(the file `headshot run` would take with --<stage>-config, kept for a person to read) and,
when it finishes, its key to batch/finished.json: the next batch skips it while the key holds.
"""

from __future__ import annotations

import hashlib
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headshot.errors import HeadshotError
from headshot.layout import SubjectLayout
from headshot.records import atomic_write_json, atomic_write_text

# The file whose presence says a stage's outputs are in place (the stage writes it last).
STAGE_OUTPUT = {
    "prepare": "dataset/dataset.json",
    "finetune": "lora/training.json",
    "generate": "headshots/index.json",
    "audit": "audit/metrics.csv",
}
BUSY_WAIT_S = 120.0  # a retried task may start before the dead worker's lock is released


def node_identity() -> dict[str, str]:
    import ray

    return {"node": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address()}


# ---- the shared-filesystem probe ----------------------------------------------------------


def probe_write(outputs: str, token: str) -> dict[str, str]:
    """Write this node's probe file under OUTPUTS; returns the node, or the write's error."""
    who = node_identity()
    folder = Path(outputs) / f".batch-probe-{token}"
    try:
        atomic_write_text(folder / who["node"], token)
    except OSError as exc:
        who["error"] = f"cannot write {folder} ({exc.strerror or exc})"
    return who


def probe_read(outputs: str, token: str, nodes: list[str]) -> dict[str, Any]:
    """Which of the nodes' probe files this node cannot see."""
    folder = Path(outputs) / f".batch-probe-{token}"
    missing = [node for node in nodes if not (folder / node).is_file()]
    return {**node_identity(), "missing": missing}


def probe_clean(outputs: str, token: str) -> None:
    import shutil

    shutil.rmtree(Path(outputs) / f".batch-probe-{token}", ignore_errors=True)


# ---- what is finished ----------------------------------------------------------------------


@dataclass
class SubjectSurvey:
    photos_sha256: str | None  # None: the photo folder is not there
    finished: dict[str, str] = field(default_factory=dict)  # stage -> key it finished with
    present: dict[str, bool] = field(default_factory=dict)  # stage -> its output file exists


def survey(outputs: str, subjects: list[tuple[str, str]]) -> dict[str, SubjectSurvey]:
    """For each (name, photos folder): the photos' fingerprint and the stages finished before."""
    from headshot.bounded_io import read_json_object

    found = {}
    for name, photos in subjects:
        layout = SubjectLayout.for_subject(Path(outputs), name)
        state = layout.root / "batch" / "finished.json"
        try:
            finished = dict(read_json_object(state).get("finished", {})) if state.is_file() else {}
        except HeadshotError:
            finished = {}  # unreadable: everything is redone, nothing is lost
        present = {stage: (layout.root / path).is_file() for stage, path in STAGE_OUTPUT.items()}
        found[name] = SubjectSurvey(_photos_sha256(Path(photos)), finished, present)
    return found


def _photos_sha256(folder: Path) -> str | None:
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# ---- one stage -----------------------------------------------------------------------------


@dataclass
class StageRequest:
    subject: str
    stage: str
    photos: str
    outputs: str
    base_model: str
    allow_pickle: bool
    settings: dict[str, Any]  # the stage's YAML options
    key: str


@dataclass
class StageOutcome:
    subject: str
    stage: str
    state: str  # done | failed
    node: str
    ip: str
    seconds: float
    reason: str | None = None


def run_stage(request: StageRequest, board=None) -> StageOutcome:
    """Run one stage of one subject; a stage's own error is returned as a failure, not raised
    (only a dead worker or node is Ray's to retry)."""
    from headshot.workflow import RunConfig

    who = node_identity()
    if board is not None:
        board.started.remote(request.subject, request.stage, who["node"], who["ip"])
    started = time.perf_counter()
    layout = SubjectLayout.for_subject(Path(request.outputs), request.subject)
    try:
        settings_file = layout.root / "batch" / f"{request.stage}.yaml"
        _write_yaml(settings_file, request.settings)
        config = RunConfig(
            photos=Path(request.photos),
            subject=request.subject,
            base_model=request.base_model,
            outputs=Path(request.outputs),
            allow_pickle=request.allow_pickle,
            **{f"{request.stage}_config": settings_file},
        )
        with _subject_held(layout.root, request.stage):
            _entry(request.stage)(config, layout)
            _mark_finished(layout, request.stage, request.key)
        state, reason = "done", None
    except HeadshotError as exc:
        state, reason = "failed", str(exc).strip().splitlines()[0]  # the one line that says why
    except Exception as exc:  # a bug, not bad input: the traceback goes to the worker's log
        traceback.print_exc()
        state, reason = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return StageOutcome(
        request.subject, request.stage, state, who["node"], who["ip"], time.perf_counter() - started, reason
    )


def _entry(stage: str):
    from headshot import workflow

    return {
        "prepare": workflow.run_prepare,
        "finetune": workflow.run_finetune,
        "generate": workflow.run_generate,
        "audit": workflow.run_audit,
    }[stage]


def _write_yaml(path: Path, settings: dict[str, Any]) -> None:
    import yaml

    text = "# written by `headshot batch`: this stage's settings for this subject\n"
    atomic_write_text(path, text + yaml.safe_dump(settings, sort_keys=True))


@contextmanager
def _subject_held(root: Path, stage: str) -> Iterator[None]:
    """The subject's busy lock for the whole stage, waiting while a dead attempt's lock lingers."""
    from headshot.busy import subject_busy

    deadline = time.monotonic() + BUSY_WAIT_S
    with ExitStack() as stack:
        while True:
            try:
                stack.enter_context(subject_busy(root, f"batch {stage}", create=True))
                break
            except HeadshotError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield


def _mark_finished(layout: SubjectLayout, stage: str, key: str) -> None:
    from headshot.bounded_io import read_json_object

    path = layout.root / "batch" / "finished.json"
    try:
        state = read_json_object(path) if path.is_file() else {}
    except HeadshotError:
        state = {}
    finished = dict(state.get("finished", {}))
    finished[stage] = key
    atomic_write_json(path, {"finished": finished})
