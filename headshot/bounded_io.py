"""The one reader for every YAML and JSON file the project reads: bounded, one-line errors.

Configs, templates, records (dataset.json, training.json, index.json, state.json),
render sidecars, manifest-store entries, `--info` files and model folders'
`model_index.json` all come through here, because any of them may be hostile or
damaged: a 50 MB file, a YAML "billion laughs" of aliases, a list nested 100,000
deep. Each is refused before it costs memory or a recursion crash, with one line
that names the file and the limit:

    configs/x.yaml: nested deeper than 64 levels (the limit for a config)

YAML aliases and anchors are refused outright: no config needs them, and their
expansion is what makes a small file unbounded in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from headshot.errors import HeadshotError

MAX_BYTES = 8 * 1024 * 1024  # records of hundreds of photos are a few MB at most
MAX_DEPTH = 64  # the deepest record nests about 6 levels


def read_limited_text(path: Path, max_bytes: int = MAX_BYTES, what: str = "file") -> str:
    """The file's text, refused when larger than `max_bytes` or not UTF-8."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise HeadshotError(f"{path}: {what} is {size:,} bytes, over the limit of {max_bytes:,}")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise HeadshotError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise HeadshotError(f"{path}: is a folder, not a {what}") from None
    except OSError as exc:
        raise HeadshotError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    if len(data) > max_bytes:  # grew while being read, or a special file
        raise HeadshotError(f"{path}: {what} is over the limit of {max_bytes:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeadshotError(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def check_depth(value: Any, limit: int, source: str) -> None:
    """Refuse data nested deeper than `limit` (iteratively: no recursion to overflow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            raise HeadshotError(f"{source}: nested deeper than {limit} levels (the limit)")
        stack.extend((child, depth + 1) for child in children)


def loads_json(text: str, source: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text with the depth limit; errors name `source`."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise HeadshotError(f"{source}: nested deeper than {max_depth} levels (the limit)") from None
    except ValueError as exc:
        raise HeadshotError(f"{source}: not valid JSON ({exc})") from None
    check_depth(data, max_depth, source)
    return data


def read_json(path: Path, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON file, size- and depth-limited."""
    return loads_json(read_limited_text(path, max_bytes, "JSON file"), str(path), max_depth)


def read_json_object(path: Path, what: str = "a JSON object", **limits) -> dict[str, Any]:
    data = read_json(path, **limits)
    if not isinstance(data, dict):
        raise HeadshotError(f"{path}: expected {what}")
    return data


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and stops composing past the depth limit."""

    max_depth = MAX_DEPTH

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are not allowed"
            )
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML anchors (&{event.anchor}) are not allowed"
            )
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise yaml.YAMLError(
                    f"line {event.start_mark.line + 1}: nested deeper than {self.max_depth} levels"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml_mapping(path: Path, max_bytes: int = 1024 * 1024, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """A YAML file holding one mapping (or nothing); bounded, aliases refused."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise HeadshotError(f"{path}: config file not found (it is not a regular file)")
    if not path.exists():
        raise HeadshotError(f"{path}: config file not found")
    text = read_limited_text(path, max_bytes, "config file")
    loader = _BoundedLoader(text)
    loader.max_depth = max_depth
    try:
        data = loader.get_single_data()
    except RecursionError:
        raise HeadshotError(f"{path}: nested deeper than {max_depth} levels (the limit)") from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise HeadshotError(f"{path}: not valid YAML: {reason[:300]}") from None
    finally:
        loader.dispose()
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HeadshotError(f"{path}: expected a mapping of options at the top level")
    check_depth(data, max_depth, str(path))
    return data
