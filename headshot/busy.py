"""One run at a time per subject folder: a second `prepare`, `finetune` or `generate` on a
folder another process is writing stops at once and names that process.

Two runs on one subject would both render the grid and both sign and deliver, the second
overwriting the first's headshots (new watermark identifiers, two manifest-store entries per
file). The guard is an OS file lock (`flock`) on `<subject>/.busy`: the kernel releases it
when its process ends, however it ends, so a crashed or killed run never leaves the folder
stuck. The file only says who holds the lock (pid, stage, start time) for the message; it is
removed when the holder is done (a killed run leaves it, harmless: its lock is gone), and a
subject folder this call created and nothing was written into is removed with it, so a
command that failed before its work began leaves nothing behind. Because the file can vanish,
a lock taken on a file that was removed meanwhile is dropped and taken again on the new one.
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
    created = _first_missing(folder)  # the folders this call creates, up to this one
    fd = _lock(folder)
    _held[folder] = fd
    try:
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "stage": stage, "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        del _held[folder]
        _release(folder, fd, created)


def _lock(folder: Path) -> int:
    """An open, exclusively locked `.busy` in `folder` (created, with the folder, if missing)."""
    while True:
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
        try:
            current = os.stat(folder / LOCK_NAME).st_ino
        except FileNotFoundError:
            current = None
        if current == os.fstat(fd).st_ino:
            return fd
        os.close(fd)  # the holder we waited on removed it as it finished: lock the new one


def _first_missing(folder: Path) -> Path | None:
    """The outermost of `folder` and its parents that does not exist yet (None: it exists)."""
    if folder.exists():
        return None
    while not folder.parent.exists():
        folder = folder.parent
    return folder


def _release(folder: Path, fd: int, created: Path | None) -> None:
    """Remove `.busy` (still locked, so no one holds a lock on a removed file), then the
    folders this call created, if nothing else was written into them."""
    try:
        os.unlink(folder / LOCK_NAME)
        while created is not None and folder.is_relative_to(created):
            folder.rmdir()  # OSError when not empty: kept, with everything above it
            folder = folder.parent
    except OSError:
        pass  # a read-only folder keeps them: harmless, the lock itself is released
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"`headshot {info['stage']}` (process {int(info['pid'])}, started {info['started']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another headshot process"
