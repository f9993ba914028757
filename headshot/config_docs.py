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
