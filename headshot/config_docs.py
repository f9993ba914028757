"""Option descriptions written once, in the config model, and copied to the YAML and the CLI.

A pydantic `Field(description=...)` is the one place an option is described. The shipped
YAML's comment for that option is derived from it (`sync_yaml_comments`, run by
`tools/sync_config_docs.py`; a test checks the YAML is in sync), and the CLI help reads
it with `option_help`.
"""

from __future__ import annotations

import re
from pathlib import Path

_LINE = re.compile(r"^(?P<key>[a-z_][a-z0-9_]*):(?P<value>[^#\n]*?)(?P<pad>\s*)(#.*)?$")


def option_help(model: type, name: str) -> str:
    """The CLI help of option `name`: its description in the config model."""
    description = model.model_fields[name].description
    if not description:
        raise KeyError(f"{model.__name__}.{name} has no description")
    return description[0].upper() + description[1:] + "."


def sync_yaml_comments(model: type, text: str) -> str:
    """`text` (a YAML file of top-level options) with each described option's comment replaced."""
    out = []
    for line in text.splitlines():
        match = _LINE.match(line)
        field = model.model_fields.get(match["key"]) if match else None
        if field is not None and field.description:
            value = f"{match['key']}:{match['value'].rstrip()}"
            line = f"{value.ljust(29)} # {field.description}"
        out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def yaml_in_sync(model: type, path: Path) -> bool:
    text = Path(path).read_text(encoding="utf-8")
    return sync_yaml_comments(model, text) == text


# ---- the options table of a docs page (docs/batch.md), between two markers -----------------

OPTIONS_START = "<!-- options: generated from the config model by tools/sync_config_docs.py -->"
OPTIONS_END = "<!-- options: end -->"


def options_markdown(model: type) -> str:
    """A Markdown table of every option of `model` (nested models flattened as a.b, lists as a[].b)."""
    rows = ["| option | type | default | what it is |", "| --- | --- | --- | --- |"]
    rows += _option_rows(model, "")
    return "\n".join(rows) + "\n"


def _option_rows(model: type, prefix: str) -> list[str]:
    from typing import get_args, get_origin

    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    rows = []
    for name, field in model.model_fields.items():
        key, annotation = f"{prefix}{name}", field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows.append(f"| `{key}` | mapping | | {field.description or ''} |")
            rows += _option_rows(annotation, f"{key}.")
            continue
        if get_origin(annotation) is list and get_args(annotation):
            item = get_args(annotation)[0]
            if isinstance(item, type) and issubclass(item, BaseModel):
                rows.append(f"| `{key}` | list | required | {field.description or ''} |")
                rows += _option_rows(item, f"{key}[].")
                continue
        if field.default is not PydanticUndefined:
            default = "none" if field.default is None else f"`{field.default}`"
        elif field.default_factory is not None:
            default = f"`{field.default_factory()}`"
        else:
            default = "required"
        kind = str(annotation).replace("pathlib.", "").replace("typing.", "").replace("<class '", "")
        kind = kind.replace("'>", "").replace("Path", "path").replace("|", "or")
        rows.append(f"| `{key}` | {kind} | {default} | {field.description or ''} |")
    return rows


def sync_markdown_options(model: type, text: str) -> str:
    """`text` (a docs page holding the two markers) with the table between them regenerated."""
    head, start, rest = text.partition(OPTIONS_START)
    _, end, tail = rest.partition(OPTIONS_END)
    if not start or not end:
        raise ValueError("the page lacks the options markers")
    return f"{head}{OPTIONS_START}\n\n{options_markdown(model)}\n{OPTIONS_END}{tail}"
