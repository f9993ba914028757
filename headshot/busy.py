"""One run at a time per subject folder: a second `prepare`, `finetune` or `generate` on a
folder another process is writing stops at once and names that process.

Two runs on one subject would both render the grid and both sign and deliver, the second
overwriting the first's headshots (new watermark identifiers, two manifest-store entries per
file). The guard is an OS file lock (`flock`) on `<subject>/.busy`: the kernel releases it
when its process ends, however it ends, so a crashed or killed run never leaves the folder
stuck. The file only says who holds the lock (pid, stage, start time) for the message.
Nested stages in one process (`headshot run`) share the lock; under `accelerate launch`
only the first process takes it (the others are part of the same run).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headshot.errors import HeadshotError

LOCK_NAME = ".busy"
_held: dict[Path, int] = {}  # subject folder -> open lock file descriptor, in this process


def _is_secondary_process() -> bool:
    """A non-first process of an `accelerate launch` / torchrun run."""
    return any(os.environ.get(name, "0") != "0" for name in ("RANK", "LOCAL_RANK"))


@contextmanager
def subject_busy(subject_folder: Path, stage: str, create: bool = False) -> Iterator[None]:
    """Hold the subject folder for `stage`, or raise HeadshotError naming the holder.

    A folder that does not exist is created with `create` (prepare starts a subject), else
    there is nothing to guard yet and the stage reports its own missing input.
    """
    folder = Path(subject_folder).resolve()
    if folder in _held or _is_secondary_process() or not (create or folder.is_dir()):
        yield
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise HeadshotError(f"{folder}: cannot open {LOCK_NAME} ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise HeadshotError(
            f"{folder}: busy: {holder} is working on this subject; wait for it to finish "
            "(or stop it) and run again"
        ) from None
    _held[folder] = fd
    try:
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "stage": stage, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        del _held[folder]
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"`headshot {info['stage']}` (process {int(info['pid'])}, started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another headshot process"
