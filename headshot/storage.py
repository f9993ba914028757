"""The write discipline every stage follows, so that nothing already produced is lost.

- New outputs are built beside the old ones and swapped in only when complete:
  `StagedFolder` for a whole folder (dataset/, headshots/), `StagedFiles` for files that
  belong together inside a folder that also holds other things (the LoRA, its kohya
  export and training.json in lora/). A stage that fails aborts its staging and the
  previous outputs stay byte-identical.
- A staging area is marked complete before the swap starts; a run killed in the middle of
  a swap is finished by the next run (`recover`), one killed before it is rolled back.
  Either way the next run says so.
- Temporary files (`.name.*.tmp` of atomic writes) that a killed run left are removed at
  the start of the next run (`remove_temp_files`).
- `unique_names` refuses two inputs that would become one output, naming both.

Fault injection, for the tests and for anyone checking these promises by hand: the
environment variable HEADSHOT_FAULT=ACTION:POINT[@N] makes every write point whose name
matches the glob POINT fail (with @N only the N-th one in the process). ACTION `kill` sends the process
SIGKILL (a real crash, nothing cleans up), `int` sends it SIGINT (a real Ctrl-C: Python
raises KeyboardInterrupt there), `enospc` raises "No space left on device" at
the write call. Write points are file names (`index.json`, `*.jpg`) for file writes and
`swap:<folder>` / `commit:<folder>` for the steps of a swap. With HEADSHOT_FAULT_ONCE=FILE
the fault fires only in the first process to create FILE: a crash a retry does not meet
again (a preempted or OOM-killed worker, as `headshot batch` retries them).
"""

from __future__ import annotations

import errno
import fnmatch
import os
import shutil
import signal
from collections.abc import Callable, Iterable
from pathlib import Path

from headshot.errors import HeadshotError

FAULT_ENV = "HEADSHOT_FAULT"
FAULT_ONCE_ENV = "HEADSHOT_FAULT_ONCE"
COMPLETE_MARKER = ".complete"
_hits: dict[str, int] = {}


def fault_point(point: str) -> None:
    """Fail here when HEADSHOT_FAULT names this write point (see the module docstring)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    action, _, pattern = spec.partition(":")
    pattern, _, nth = pattern.partition("@")
    if not fnmatch.fnmatchcase(point, pattern):
        return
    if nth:  # only the N-th matching write point of this process
        _hits[spec] = _hits.get(spec, 0) + 1
        if _hits[spec] != int(nth):
            return
    once = os.environ.get(FAULT_ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # an earlier process already met this fault
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "int":
        os.kill(os.getpid(), signal.SIGINT)
    elif action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), point)


def remove_temp_files(folder: Path, recursive: bool = True) -> list[Path]:
    """Remove the hidden temporary files killed atomic writes left in `folder`."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = list(folder.rglob(".*.tmp") if recursive else folder.glob(".*.tmp"))
    for leftover in found:
        if leftover.is_file():
            leftover.unlink(missing_ok=True)
    return found


def unique_names(pairs: Iterable[tuple[str, str]], what: str) -> dict[str, str]:
    """{input: output name}; two inputs with one output name (ignoring case, as macOS and
    Windows folders do) are an error that names both."""
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    for source, name in pairs:
        key = name.casefold()
        if key in owner and owner[key] != source:
            raise HeadshotError(
                f"{owner[key]} and {source} would both be written as {what} {name}; rename one"
            )
        owner[key] = source
        names[source] = name
    return names


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def final_path(path: Path) -> Path:
    """Where a file being built in a StagedFolder's staging area will live once committed."""
    path = Path(path)
    for parent in path.parents:
        name = parent.name
        if name.startswith(".") and name.endswith(".staging"):
            return parent.parent / name[1 : -len(".staging")] / path.relative_to(parent)
    return path


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class _Staging:
    """What both kinds of staging share: a fresh staging area after repairing the last run's,
    and sealing it (temp files out, marked complete, synced) before it goes in."""

    staging: Path

    def recover(self) -> str | None:
        raise NotImplementedError

    def begin(self) -> Path:
        self.recover()
        self.staging.mkdir(parents=True)
        return self.staging

    def abort(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def _seal(self, name: str) -> None:
        remove_temp_files(self.staging)
        (self.staging / COMPLETE_MARKER).write_bytes(b"")
        _sync_folder(self.staging)
        fault_point(f"swap:{name}")


class StagedFolder(_Staging):
    """A folder rebuilt in full beside the old one (`.NAME.staging`) and swapped in at once."""

    def __init__(self, final: Path):
        self.final = Path(final)
        self.staging = self.final.parent / f".{self.final.name}.staging"
        self.old = self.final.parent / f".{self.final.name}.old"

    def recover(self) -> str | None:
        """Repair what a killed run left; returns a sentence saying what was done, if anything."""
        message = None
        complete = (self.staging / COMPLETE_MARKER).is_file()
        if complete and not self.final.exists():
            os.replace(self.staging, self.final)  # killed mid-swap: finish it
            (self.final / COMPLETE_MARKER).unlink(missing_ok=True)
            message = (
                f"{self.final}: an earlier run stopped while replacing it; its new contents are now in place"
            )
        elif self.old.exists() and not self.final.exists():
            os.replace(self.old, self.final)
            message = (
                f"{self.final}: an earlier run stopped while replacing it; the previous contents are restored"
            )
        elif self.staging.exists():
            message = f"{self.final}: an earlier run stopped before finishing; its partial output was removed"
        shutil.rmtree(self.staging, ignore_errors=True)
        shutil.rmtree(self.old, ignore_errors=True)
        remove_temp_files(self.final)
        return message

    def commit(self) -> None:
        """Swap the staging folder in; the previous folder is removed only after that."""
        self._seal(self.final.name)
        if self.final.exists():
            os.replace(self.final, self.old)
        fault_point(f"commit:{self.final.name}")
        os.replace(self.staging, self.final)
        (self.final / COMPLETE_MARKER).unlink(missing_ok=True)
        _sync_folder(self.final.parent)
        shutil.rmtree(self.old, ignore_errors=True)


class StagedFiles(_Staging):
    """Files that belong together, staged in `FOLDER/.staged/` and moved in as one set.

    Moving several files is not one atomic step, so the set is marked complete first: a
    run killed while moving them has the next run finish the moves (`recover`).
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.staging = self.folder / ".staged"

    def recover(self) -> str | None:
        message = None
        if (self.staging / COMPLETE_MARKER).is_file():
            self._move_all()
            message = f"{self.folder}: an earlier run stopped while saving its results; they are now complete"
        elif self.staging.exists():
            message = (
                f"{self.folder}: an earlier run stopped before saving its results; partial files removed"
            )
        shutil.rmtree(self.staging, ignore_errors=True)
        remove_temp_files(self.folder, recursive=False)
        return message

    def commit(self) -> None:
        self._seal(self.folder.name)
        self._move_all()
        shutil.rmtree(self.staging, ignore_errors=True)

    def _move_all(self) -> None:
        # Deepest files first and the record (*.json) last, so a record never names a file
        # that is not in place yet.
        files = [p for p in self.staging.rglob("*") if p.is_file() and p.name != COMPLETE_MARKER]
        for path in sorted(files, key=lambda p: (p.suffix == ".json", p.as_posix())):
            target = self.folder / path.relative_to(self.staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(path, target)
            except FileNotFoundError:  # another process finishing the same recovery moved it
                continue
            fault_point(f"commit:{self.folder.name}")


def run_staged(staged: StagedFolder | StagedFiles, build: Callable[[Path], object], say=None):
    """begin -> build(staging) -> commit, aborting (old outputs untouched) on any failure."""
    message = staged.recover()
    if message and say is not None:
        say(message)
    staging = staged.begin()
    try:
        result = build(staging)
        staged.commit()
    except BaseException:
        staged.abort()
        raise
    return result


def repair_files(folder: Path, say=None) -> None:
    """What a killed run left in a folder of StagedFiles: a half-moved set (finished or
    removed), temporary files and partial staging folders (`.*.partial`) at any depth."""
    message = StagedFiles(folder).recover()
    if message and say is not None:
        say(message)
    remove_temp_files(folder)
    for partial in Path(folder).rglob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
