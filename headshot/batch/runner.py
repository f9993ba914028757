"""The batch driver: connect to Ray, check the cluster can do the batch, then run every
subject's unfinished stages as Ray tasks, each submitted when the subject's previous one ends.

Why a driver loop and not a chain of dependent tasks: a subject that fails stops there with
its reason, while the others go on, and the loop sees every ending to keep the live table
and batch.json current. Ray retries a task whose worker or node dies (`max_retries`); the
stage functions resume from their own checkpoints, so a retry redoes little. A small actor
(the progress board) hears each attempt start: that is where a stage's node, start time and
retry count come from.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from headshot.batch import store as manifest_store
from headshot.batch import tasks
from headshot.batch.config import STAGES, BatchConfig, SubjectEntry, stage_key
from headshot.batch.record import BatchRecord, EngineRecord, StageRecord, SubjectRecord, live_table
from headshot.errors import HeadshotError

# The embedded local Ray only passes small records between tasks (images and weights go
# through the outputs folder), so its object store is kept small.
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20
PROBE_TIMEOUT_S = 300
PROBE_CLEAN_TIMEOUT_S = 30


@dataclass
class StagePlan:
    stage: str
    settings: dict[str, Any]
    key: str
    finished: bool  # finished by an earlier batch with this key: skipped


def connect(address: str | None) -> bool:
    """Join the cluster at `address`, or start a local Ray; True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    if address is not None:
        check_reachable(address)
    options: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
    try:
        if address is None:
            # "local": a Ray of its own, even where RAY_ADDRESS or a `ray start` here names a cluster
            local = {"include_dashboard": False, "object_store_memory": LOCAL_OBJECT_STORE_BYTES}
            ray.init(address="local", **local, **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"--address {address}" if address else "local Ray"
        raise HeadshotError(
            f"{where}: cannot start or join a Ray cluster ({str(exc).splitlines()[0]})"
        ) from None
    return True


def check_reachable(address: str) -> None:
    """A clear error at once for an address nothing listens on (Ray itself retries for minutes)."""
    import socket

    if address == "auto":
        return  # Ray finds the cluster this machine belongs to, or says there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise HeadshotError(f"--address {address}: expected auto, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as exc:
        raise HeadshotError(
            f"--address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one with "
            "`ray start --head`, or leave out --address for a local Ray"
        ) from None


def run_batch(
    batch: BatchConfig, *, source: str, address: str | None, record_path: Path | None, console: Console
) -> BatchRecord:
    import ray

    started_here = connect(address)
    try:
        return _run(batch, source, address, record_path or batch.outputs / "batch.json", console)
    finally:
        if started_here:
            ray.shutdown()


def _run(batch: BatchConfig, source: str, address: str | None, record_path: Path, console: Console):
    import ray

    nodes = [node for node in ray.nodes() if node["Alive"]]
    hosts = len({node["NodeManagerAddress"] for node in nodes})
    check_feasible(batch, nodes, source)
    store = manifest_store.effective_store(batch.manifest_store, batch.signing_config, batch.outputs)
    manifest_store.check_store_for_cluster(store, hosts, source)
    generate_extra = manifest_store.generate_options(store, batch.signing_config, batch.outputs)
    probe_shared_outputs(str(batch.outputs), [node["NodeID"] for node in nodes])

    survey = ray.get(
        ray.remote(tasks.survey)
        .options(num_cpus=0)
        .remote(str(batch.outputs), [(entry.name, str(entry.photos)) for entry in batch.subjects])
    )
    plans = {
        entry.name: plan_subject(batch, entry, survey[entry.name], generate_extra) for entry in batch.subjects
    }
    resources = {k: float(v) for k, v in ray.cluster_resources().items() if not k.startswith("node:")}
    engine = EngineRecord(
        version=ray.__version__,
        address=address or "local",
        resources=resources,
        nodes=len(nodes),
        hosts=hosts,
    )
    record = BatchRecord(
        batch_file=Path(source).name,
        engine=engine,
        manifest_store="postgresql" if manifest_store.is_server_url(store) else "local",
        subjects=[
            SubjectRecord(
                name=name,
                stages={p.stage: StageRecord(state="skipped" if p.finished else "queued") for p in plan},
            )
            for name, plan in plans.items()
        ],
    )
    return Driver(batch, plans, record, record_path, console).run()


def plan_subject(batch: BatchConfig, entry: SubjectEntry, found: tasks.SubjectSurvey, generate_extra) -> list:
    """Each stage's settings and key; the finished prefix (same key, output in place) is skipped."""
    upstream = found.photos_sha256 or "missing photos"
    plan, finished_so_far = [], True
    for stage in STAGES:
        settings = batch.stage_options(entry, stage)
        if stage == "generate":
            settings = {**settings, **generate_extra}
        key = stage_key(
            stage,
            {"options": settings, "base_model": batch.base_model_of(entry),
             "allow_pickle": batch.allow_pickle, "photos": str(entry.photos)},
            upstream,
        )  # fmt: skip
        finished_so_far = finished_so_far and found.finished.get(stage) == key and found.present[stage]
        plan.append(StagePlan(stage, settings, key, finished_so_far))
        upstream = key
    return plan


def check_feasible(batch: BatchConfig, nodes: list[dict], source: str) -> None:
    """Refuse a stage no node can run (else its tasks would wait forever)."""
    for stage in STAGES:
        wanted = getattr(batch.resources, stage).demands()
        if not any(all(node["Resources"].get(k, 0) >= v for k, v in wanted.items()) for node in nodes):
            shown = {"CPU", "GPU", *wanted}  # what each node offers of every resource asked for
            offered = "; ".join(
                ", ".join(f"{k} {_amount(k, n['Resources'].get(k, 0))}" for k in sorted(shown)) for n in nodes
            )
            asked = ", ".join(f"{k} {_amount(k, v)}" for k, v in wanted.items())
            raise HeadshotError(
                f"{source}: field 'resources.{stage}': asks for {asked}, which no node of the cluster "
                f"offers (nodes: {offered})"
            )


def _amount(resource: str, value: float) -> str:
    return f"{value / 2**30:g} GiB" if resource == "memory" else f"{value:g}"


def probe_shared_outputs(outputs: str, node_ids: list[str]) -> None:
    """A task on every node writes a file under OUTPUTS, then every node looks for all of them."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def on_each(function, *args, timeout: float = PROBE_TIMEOUT_S):
        remote = ray.remote(function)
        return ray.get(
            [
                remote.options(
                    num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
                ).remote(*args)
                for node in node_ids
            ],
            timeout=timeout,
        )

    token = secrets.token_hex(6)
    try:
        written = on_each(tasks.probe_write, outputs, token)
        seen = on_each(tasks.probe_read, outputs, token, node_ids) if not _write_errors(written) else []
    finally:
        # On every node (an unshared folder is each node's own), briefly: a lost node's error
        # must not replace the verdict or the error on its way out.
        with contextlib.suppress(ray.exceptions.RayError):
            on_each(tasks.probe_clean, outputs, token, timeout=PROBE_CLEAN_TIMEOUT_S)
    verdict = probe_verdict(outputs, written, seen)
    if verdict:
        raise HeadshotError(verdict)


def _write_errors(written: list[dict]) -> list[dict]:
    return [who for who in written if "error" in who]


def probe_verdict(outputs: str, written: list[dict], seen: list[dict]) -> str | None:
    """The refusal, when a node could not write the outputs root or cannot see another's files."""
    for who in _write_errors(written):
        where = f"node {who['node'][:8]} ({who['ip']})"
        return f"{outputs}: {where}: {who['error']}; every node must be able to write it"
    for who in seen:
        if who["missing"]:
            others = ", ".join(node[:8] for node in who["missing"])
            return (
                f"{outputs}: not shared between the nodes: node {who['node'][:8]} ({who['ip']}) cannot "
                f"see the files node(s) {others} wrote there; put the outputs on a filesystem every node "
                "mounts at the same path (NFS, CephFS, a cloud file store)"
            )
    return None


class ProgressBoard:
    """A Ray actor every stage attempt reports its start to: node, time, and so retries."""

    def __init__(self) -> None:
        self.starts: dict[str, list[tuple[str, str, float]]] = {}

    def started(self, subject: str, stage: str, node: str, ip: str) -> None:
        self.starts.setdefault(f"{subject}/{stage}", []).append((node, ip, time.time()))

    def snapshot(self) -> dict[str, list[tuple[str, str, float]]]:
        return self.starts


class Driver:
    """Submits each subject's next stage when its previous one ends; keeps the record current."""

    def __init__(self, batch, plans, record: BatchRecord, record_path: Path, console: Console):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.batch, self.plans, self.record, self.record_path = batch, plans, record, record_path
        self.console = console
        self.entries = {entry.name: entry for entry in batch.subjects}
        self.pending: dict[Any, tuple[str, str]] = {}
        # On the head node: the board outlives any worker node the batch loses.
        head = next((n["NodeID"] for n in ray.nodes() if "node:__internal_head__" in n["Resources"]), None)
        placement = NodeAffinitySchedulingStrategy(head, soft=False) if head else "DEFAULT"
        self.board = ray.remote(ProgressBoard).options(num_cpus=0, scheduling_strategy=placement).remote()
        self.remote_stage = ray.remote(tasks.run_stage)

    def run(self) -> BatchRecord:
        import ray
        from rich.live import Live

        with Live(live_table(self.record, STAGES), console=self.console, auto_refresh=False) as live:
            try:
                for name in self.plans:
                    self._submit_next(name)
                self._save(live)
                while self.pending:
                    ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
                    for ref in ready:
                        self._finished(ref)
                    self._read_board()
                    self._save(live)
            except KeyboardInterrupt:
                self._interrupt()
                self._save(live)
                raise
        return self.record

    def _submit_next(self, name: str) -> None:
        subject = self.record.subject(name)
        todo = [p for p in self.plans[name] if subject.stages[p.stage].state == "queued"]
        if not todo:
            subject.state = "delivered"
            return
        plan, entry = todo[0], self.entries[name]
        request = tasks.StageRequest(
            subject=name,
            stage=plan.stage,
            photos=str(entry.photos),
            outputs=str(self.batch.outputs),
            base_model=self.batch.base_model_of(entry),
            allow_pickle=self.batch.allow_pickle,
            settings=plan.settings,
            key=plan.key,
        )
        options = getattr(self.batch.resources, plan.stage).ray_options()
        ref = self.remote_stage.options(
            **options,
            max_retries=self.batch.max_retries,
            retry_exceptions=False,
            scheduling_strategy="SPREAD",
        ).remote(request, self.board)
        self.pending[ref] = (name, plan.stage)
        subject.state = "running"

    def _finished(self, ref) -> None:
        import ray

        name, stage = self.pending.pop(ref)
        subject = self.record.subject(name)
        item = subject.stages[stage]
        try:
            outcome: tasks.StageOutcome = ray.get(ref)
            item.state, item.reason, item.seconds = outcome.state, outcome.reason, round(outcome.seconds, 2)
            item.node, item.ip = outcome.node, outcome.ip
        except ray.exceptions.RayError as exc:  # retries used up: the worker or node kept dying
            item.state = "failed"
            item.reason = (
                f"{type(exc).__name__} after {self.batch.max_retries} retries: "
                + (str(exc).strip().splitlines() or [""])[0][:300]
            )
        self._read_board()
        if item.state == "done":
            self._submit_next(name)
            return
        subject.state, subject.failed_stage, subject.reason = "failed", stage, item.reason
        for later in subject.stages.values():
            if later.state == "queued":
                later.state = "not_run"

    def _read_board(self) -> None:
        import ray

        try:
            starts = ray.get(self.board.snapshot.remote(), timeout=10)
        except ray.exceptions.RayError:
            return  # the board's node died: counts resume when it is back
        for key, attempts in starts.items():
            name, stage = key.split("/", 1)
            item = self.record.subject(name).stages[stage]
            item.attempts, item.retries = len(attempts), len(attempts) - 1
            item.node, item.ip, item.started = attempts[-1]
            if item.state == "queued" and (name, stage) in self.pending.values():
                item.state = "running"

    def _interrupt(self) -> None:
        import ray

        for ref, (name, stage) in self.pending.items():
            ray.cancel(ref, force=True)
            self.record.subject(name).stages[stage].state = "interrupted"
            self.record.subject(name).state = "interrupted"
        self.pending.clear()

    def _save(self, live) -> None:
        if not self.pending:
            self.record.finished = time.time()
            self.record.seconds = round(self.record.finished - self.record.started, 2)
        live.update(live_table(self.record, STAGES), refresh=True)
        self.record.write(self.record_path)
