"""Typed configuration: YAML files parsed into pydantic models, overridden from the CLI.

Every stage has one config model (a `StrictModel`). `load_config` merges, in order,
the model's defaults, a YAML file the user names, and the options given on the
command line, then validates the result. Errors name the file and the field:
`configs/x.yaml: field 'lr': expected a number`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from headshot.errors import HeadshotError

Model = TypeVar("Model", bound=BaseModel)


class StrictModel(BaseModel):
    """A config object: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def configs_root() -> Path:
    """The folder holding the shipped YAML configs (presets, templates, signing)."""
    packaged = Path(str(resources.files("headshot"))) / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "configs"


def cache_root() -> Path:
    """Where caches that outlive a run live (class images, weight hashes): $HEADSHOT_CACHE."""
    import os

    return Path(os.environ.get("HEADSHOT_CACHE", "~/.cache/headshot")).expanduser()


_FRIENDLY = {
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "extra_forbidden": "unknown field",
    "missing": "required: give it on the command line or in the --config file",
    "list_type": "expected a list",
    "dict_type": "expected a mapping",
    "model_type": "expected a mapping",
}


def describe_validation_error(
    error: ValidationError, source: str, command_line: frozenset[str] = frozenset()
) -> str:
    """Turn a pydantic error into lines like `source: field 'a.b': expected a number`.

    Fields whose top-level key is in `command_line` are blamed on the command line.
    """
    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        field = ".".join(loc) or "(top level)"
        reason = _FRIENDLY.get(item["type"], item["msg"][:1].lower() + item["msg"][1:])
        if item["type"] not in ("missing", "extra_forbidden") and "input" in item:
            reason += f" (got {item['input']!r})"
        where = "command line" if loc and loc[0] in command_line else source
        lines.append(f"{where}: field '{field}': {reason}")
    return "\n".join(lines)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise HeadshotError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise HeadshotError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise HeadshotError(f"{path}: expected a mapping of options at the top level")
    return data


def validate(
    model_cls: type[Model],
    data: dict[str, Any],
    source: str,
    command_line: frozenset[str] = frozenset(),
) -> Model:
    try:
        return model_cls.model_validate(data)
    except ValidationError as exc:
        raise HeadshotError(describe_validation_error(exc, source, command_line)) from None


def read_json_record(path: Path, model_cls: type[Model], what: str = "a JSON object") -> Model:
    """Read a JSON file holding one object and validate it; errors name the file."""
    import json

    path = Path(path)
    if not path.is_file():
        raise HeadshotError(f"{path}: file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise HeadshotError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise HeadshotError(f"{path}: expected {what}")
    return validate(model_cls, data, str(path))


def load_config(
    model_cls: type[Model],
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Model:
    """Defaults < YAML file < command-line overrides (None values mean 'not given')."""
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    source = str(path) if path is not None else "config"
    return validate(model_cls, _deep_merge(data, given), source, frozenset(given))


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
