"""Typed configuration: YAML files parsed into pydantic models, overridden from the CLI.

Every stage has one config model (a `StrictModel`). `load_config` merges, in order,
the model's defaults, a YAML file the user names, and the options given on the
command line, then validates the result. Errors name the file and the field:
`configs/x.yaml: field 'lr': expected a number`.
"""

from __future__ import annotations

import unicodedata
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from headshot.errors import HeadshotError

Model = TypeVar("Model", bound=BaseModel)


# The base model a command uses when none is named (a preset, see configs/models/), and the
# family the demo runs on: named here once, so stages never spell a family out. The default is
# FLUX.2 [klein] 4B base: the modern family whose weights allow commercial use (Apache-2.0),
# and the undistilled variant, the one meant for training (README, "Base models").
DEFAULT_BASE_MODEL = "flux2-klein-base"
DEMO_FAMILY = "sd15"


class StrictModel(BaseModel):
    """A config object: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _plain_text(value: str) -> str:
    for char in value:
        if unicodedata.category(char) == "Cc" and char not in "\n\t":
            raise ValueError(f"contains a control character (U+{ord(char):04X})")
    return value


# Value types with the ranges every config shares: seeds torch and numpy both accept,
# texts without control characters (they end up in prompts, file names and terminals).
MAX_SEED = 2**32 - 1
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Text = Annotated[str, Field(max_length=2000), AfterValidator(_plain_text)]
Word = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_plain_text)]
# Value types of the records stages read back from disk (dataset.json, training.json): a
# record is checked on reading like a config, since anyone can edit it in between.
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Resolution = Annotated[int, Field(ge=8, le=16384)]
Count = Annotated[int, Field(ge=0, le=100_000_000)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


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


MAX_ERRORS_SHOWN = 3


def describe_validation_error(
    error: ValidationError, source: str, command_line: frozenset[str] = frozenset()
) -> str:
    """Turn a pydantic error into one line like `source: field 'a.b': expected a number`.

    Fields whose top-level key is in `command_line` are blamed on the command line. Past
    MAX_ERRORS_SHOWN errors the rest are counted, not listed (a 50 MB file of unknown keys
    gets one line, not millions).
    """
    items = error.errors()
    parts = []
    for item in items[:MAX_ERRORS_SHOWN]:
        loc = [str(part) for part in item["loc"]]
        field = ".".join(loc)[:120] or "(top level)"
        reason = _FRIENDLY.get(item["type"], item["msg"][:1].lower() + item["msg"][1:]).removeprefix(
            "value error, "
        )
        if item["type"] not in ("missing", "extra_forbidden") and "input" in item:
            shown = repr(item["input"])
            reason += f" (got {shown[:80]}{'...' if len(shown) > 80 else ''})"
        where = "command line" if loc and loc[0] in command_line else source
        parts.append(f"{where}: field '{field}': {' '.join(reason.split())}")
    rest = items[MAX_ERRORS_SHOWN:]
    if rest:
        unknown = sum(item["type"] == "extra_forbidden" for item in rest)
        detail = f", {unknown:,} of them unknown fields" if unknown else ""
        parts.append(f"and {len(rest):,} more errors{detail}")
    return "; ".join(parts)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping through the bounded reader; errors name the file."""
    from headshot.bounded_io import read_yaml_mapping

    return read_yaml_mapping(Path(path))


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
    """Read a JSON file holding one object (bounded) and validate it; errors name the file."""
    from headshot.bounded_io import read_json_object

    path = Path(path)
    if not path.is_file():
        raise HeadshotError(f"{path}: file not found")
    return validate(model_cls, read_json_object(path, what), str(path))


def load_config(
    model_cls: type[Model],
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    paths_from_file: tuple[str, ...] = (),
) -> Model:
    """Defaults < YAML file < command-line overrides (None values mean 'not given').

    The fields named in `paths_from_file` are paths: a relative one written in the file is
    read from the file's folder (one given on the command line, from the current folder).
    """
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    for name in paths_from_file:
        value = data.get(name)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            data[name] = str(Path(path).parent / Path(value).expanduser())
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
