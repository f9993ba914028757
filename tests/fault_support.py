"""Helpers for the fault-injection suite: real crashes, full disks, read-only folders.

A kill is a real SIGKILL of a real `python -m headshot` child, at a write point named by
HEADSHOT_FAULT (headshot.storage.fault_point): deterministic, no timing luck. A full disk
is a size-limited tmpfs where the tests run as root (they can mount one), else the same
hook's simulated ENOSPC. A read-only folder is a read-only bind mount as root (root
ignores file modes), else chmod 0555.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from tests.generate_support import subprocess_env

LEFTOVER_PATTERNS = (".*.tmp", ".*.staging", ".*.old", ".staged", ".pending-*", ".*.partial", ".export-*")


def run_headshot(*args, fault: str | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m headshot ARGS` in a child process, optionally killed at a write point."""
    child_env = {**subprocess_env(), **(env or {})}
    child_env.pop("HEADSHOT_FAULT", None)
    if fault:
        child_env["HEADSHOT_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "headshot", *map(str, args)],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes); {} when it does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def leftovers(root: Path) -> list[str]:
    """Temporary files, staging folders and pending markers anywhere under `root`."""
    found = set()
    for pattern in LEFTOVER_PATTERNS:
        found |= {p.relative_to(root).as_posix() for p in Path(root).rglob(pattern)}
    return sorted(found)


def assert_killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -9, (
        f"expected a SIGKILL at the write point, got {result.returncode}\n" + (result.stderr[-2000:])
    )


def assert_one_line_error(err: str, *names: str) -> str:
    """Exit-1 output: no traceback, exactly one error line, naming each of `names`."""
    assert "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    tail = err[err.index(lines[0]) + len(lines[0]) :].strip()
    assert not tail, f"the error continues past one line: {tail[:500]}"
    for name in names:
        assert str(name) in lines[0], f"{name!r} not named in: {lines[0]}"
    return lines[0]


def _unmount(folder: Path) -> None:
    # Lazily when busy (a file the code under test left open): never leave a mount behind.
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def can_mount() -> bool:
    return os.geteuid() == 0 and sys.platform.startswith("linux")


@contextlib.contextmanager
def read_only(folder: Path):
    """Make `folder` read-only for this process and its children, then restore it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if can_mount():
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
            yield folder
        finally:
            _unmount(folder)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(mode)


@contextlib.contextmanager
def full_disk(folder: Path, size_kb: int, monkeypatch, point: str):
    """`folder` on a disk with only `size_kb` KB: a real tmpfs as root, else simulated ENOSPC
    at the write point `point`. Yields True when the disk is real."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if can_mount():
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], check=True)
        try:
            yield True
        finally:
            _unmount(folder)
    else:
        monkeypatch.setenv("HEADSHOT_FAULT", f"enospc:{point}")
        yield False


def store_entries(folder: Path, state: str = "delivered") -> dict[str, str | None]:
    """The manifest repository's rows in `state` (identifier -> sha256 of the delivered file),
    read from the default SQLite file of a manifest_store folder with the standard library."""
    import sqlite3

    database = Path(folder) / "manifests.sqlite"
    if not database.is_file():
        return {}
    with contextlib.closing(sqlite3.connect(database)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = connection.execute(
            "SELECT identifier, sha256 FROM headshot_manifests WHERE state = ?", (state,)
        ).fetchall()
    return dict(rows)
