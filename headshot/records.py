"""Helpers every stage uses to write its folder: atomic writes, hashes, run records."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from headshot import __version__
from headshot.errors import HeadshotError
from headshot.storage import fault_point


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class WriteError(OSError, HeadshotError):
    """A write that failed (disk full, read-only folder): one line naming the file.

    Still an OSError, so callers that tolerate a failed write (a cache) keep doing so.
    """

    def __str__(self) -> str:
        return f"{self.filename}: cannot write ({self.strerror}); the previous outputs are kept"


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one.

    The file gets `mode`, or an ordinary new file's permissions (0666 less the umask),
    set before it appears under its name (so a 0600 key is never readable by others).
    The write point is named by the file name for fault injection (headshot.storage).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK if mode is None else mode)
        fault_point(path.name)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, WriteError):
            raise
        raise WriteError(exc.errno, exc.strerror or str(exc), str(path)) from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, record: Any) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def atomic_save_image(path: Path, image, **save_options) -> None:
    """Save a PIL image atomically; the format comes from the file suffix."""
    import io

    buffer = io.BytesIO()
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP"}.get(path.suffix.lower())
    image.save(buffer, format=fmt, **save_options)
    atomic_write_bytes(path, buffer.getvalue())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(paths: Iterable[Path], root: Path) -> str:
    """One hash over several files, stable under the order they are given in."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.relative_to(root).as_posix()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


_VERSIONED = ("torch", "diffusers", "transformers", "peft", "accelerate", "c2pa-python", "dlib-bin", "numpy")


def library_versions() -> dict[str, str]:
    versions = {"headshot": __version__, "python": platform.python_version()}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _looks_absolute(text: str) -> bool:
    return text.startswith(("/", "~", "\\\\")) or (len(text) > 2 and text[1] == ":" and text[2] in "/\\")


def portable_path(value: str | Path, root: Path) -> str:
    """A path as a record may hold it: relative to `root` when inside it, else its name only.

    Records never carry absolute paths: they would leak the user's home folder name and
    stop matching when the outputs folder moves.
    """
    path = Path(value).expanduser()
    try:
        return path.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return path.name


def portable_record(record: Any, root: Path) -> Any:
    """`record` with every absolute path in it (at any depth) made portable (portable_path)."""
    if isinstance(record, dict):
        return {key: portable_record(value, root) for key, value in record.items()}
    if isinstance(record, (list, tuple)):
        return [portable_record(value, root) for value in record]
    if isinstance(record, Path) or (
        isinstance(record, str) and "\n" not in record and _looks_absolute(record)
    ):
        return portable_path(record, root)
    return record


def recorded_model(base_model: str, subject_root: Path) -> str:
    """How a record names a base model: presets and hub ids as given; a local model by its
    path relative to the subject folder (`../models/tiny-sd15`, `../../../models/sdxl`),
    found again from there. Only when that relative path would name the user (a model in
    another home folder) or cannot be formed is it `local:<folder name>`: its path is then
    not recorded, and generate needs --base-model."""
    import getpass
    import socket

    path = Path(base_model).expanduser()
    if not path.exists():
        return base_model
    try:
        relative = Path(os.path.relpath(path.resolve(), Path(subject_root).resolve()))
    except ValueError:  # another drive
        return f"local:{path.name}"
    private = {getpass.getuser(), socket.gethostname()}
    if relative.is_absolute() or private & set(relative.parts[:-1]):
        return f"local:{path.name}"
    text = relative.as_posix()
    return text if text.startswith("../") else f"./{text}"


def model_from_record(recorded: str, subject_root: Path) -> str:
    """The inverse of recorded_model for the relative form; other names are returned as is."""
    if recorded.startswith(("../", "./")):
        return os.path.normpath(Path(subject_root) / recorded)
    return recorded


def check_inside(record_path: Path, field: str, relative: str | None) -> None:
    """A file a record names must lie inside the record's folder: no absolute path, no '..'."""
    if relative is None:
        return
    parts = Path(relative).parts
    if Path(relative).is_absolute() or ".." in parts or relative.startswith("~") or "\\" in relative:
        raise HeadshotError(
            f"{record_path}: field '{field}': {relative!r} leaves the record's folder "
            "(paths in a record are relative to its folder)"
        )
