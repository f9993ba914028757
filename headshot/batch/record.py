"""batch.json and the live table: which engine ran the batch, and per subject each stage's
state, node, timings, retries and failure reason.

The record is rewritten (atomically) on every change, so a person or a script can follow a
running batch by reading it, and an interrupted batch leaves a record that says so.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from headshot.records import atomic_write_json

StageState = Literal["queued", "running", "done", "skipped", "failed", "not_run", "interrupted"]
SubjectState = Literal["queued", "running", "delivered", "failed", "interrupted"]


class StageRecord(BaseModel):
    state: StageState = "queued"
    node: str | None = None  # Ray node id of the last attempt
    ip: str | None = None
    started: float | None = None  # Unix time of the last attempt's start
    seconds: float | None = None  # the successful (or last) attempt's duration
    attempts: int = 0
    retries: int = 0  # attempts Ray reran after a worker or node died
    reason: str | None = None


class SubjectRecord(BaseModel):
    name: str
    state: SubjectState = "queued"
    failed_stage: str | None = None
    reason: str | None = None
    stages: dict[str, StageRecord] = Field(default_factory=dict)


class EngineRecord(BaseModel):
    name: str = "ray"
    version: str
    address: str  # "local" for the embedded local Ray, else the address given
    resources: dict[str, float]
    nodes: int
    hosts: int


class BatchRecord(BaseModel):
    batch_file: str
    started: float = Field(default_factory=time.time)
    finished: float | None = None
    seconds: float | None = None
    engine: EngineRecord
    manifest_store: str
    subjects: list[SubjectRecord]

    def subject(self, name: str) -> SubjectRecord:
        return next(entry for entry in self.subjects if entry.name == name)

    def write(self, path: Path) -> None:
        atomic_write_json(path, self.model_dump(mode="json"))

    @property
    def failed(self) -> list[SubjectRecord]:
        return [entry for entry in self.subjects if entry.state == "failed"]


_STYLE = {
    "queued": "dim",
    "running": "yellow",
    "done": "green",
    "skipped": "cyan",
    "failed": "bold red",
    "not_run": "dim",
    "interrupted": "magenta",
    "delivered": "bold green",
}


def live_table(record: BatchRecord, stages: tuple[str, ...]) -> Any:
    """Subjects x stages: state, node and elapsed time of each cell."""
    from rich.table import Table

    table = Table(title=f"headshot batch on Ray {record.engine.version} ({record.engine.address})")
    table.add_column("subject")
    for stage in stages:
        table.add_column(stage)
    table.add_column("result")
    now = time.time()
    for entry in record.subjects:
        cells = []
        for stage in stages:
            item = entry.stages[stage]
            text = f"[{_STYLE[item.state]}]{item.state}[/]"
            if item.state == "running" and item.started is not None:
                text += f" {now - item.started:.0f}s"
            elif item.seconds is not None:
                text += f" {item.seconds:.1f}s"
            if item.node:
                text += f" @{item.node[:6]}"
            if item.retries:
                text += f" (retried {item.retries}x)"
            cells.append(text)
        result = f"[{_STYLE[entry.state]}]{entry.state}[/]"
        if entry.reason:
            result += f": {entry.reason[:80]}"
        table.add_row(entry.name, *cells, result)
    return table
