"""Option descriptions written once, and copied to the YAML, the CLI and the documentation site.

A pydantic `Field(description=...)` is the one place an option is described. The shipped
YAML's comment for that option is derived from it (`sync_yaml_comments`, run by
`tools/sync_config_docs.py`; a test checks the YAML is in sync), and the CLI help reads
it with `option_help`.

Each stage's docs page carries a table of its config model's options (`sync_markdown_options`,
between `<!-- options: ModelName -->` and `<!-- /options -->`): the names, types and defaults
come from the model, so they cannot drift; the description is the field's own, or, for a
model whose fields carry none yet, the comment the shipped YAML gives that option (then the
YAML is that option's one description). `tests/test_config_docs.py` checks every page is in
sync.
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


# ---- the options table of a docs page, between two markers naming the config model --------

OPTIONS_END = "<!-- /options -->"
_OPTIONS_START = re.compile(r"<!-- options: (?P<model>[A-Za-z_][A-Za-z0-9_]*) -->")
# (module, config model, docs page, shipped YAML or None): what tools/sync_config_docs.py writes.
DOCS_PAGES = [
    ("headshot.training.intake", "PrepareConfig", "prepare.md", "prepare.yaml"),
    ("headshot.training.finetune_config", "FinetuneConfig", "finetune.md", "finetune.yaml"),
    ("headshot.pipelines.generate_config", "GenerateConfig", "generate.md", "generate.yaml"),
    ("headshot.signing.config", "SigningConfig", "signing.md", "signing.yaml"),
    ("headshot.analysis.audit_record", "AuditConfig", "audit.md", "audit.yaml"),
    ("headshot.study.config", "StudyConfig", "study.md", "study.yaml"),
    ("headshot.batch.config", "BatchConfig", "batch.md", None),
]


def options_start(model: type) -> str:
    return f"<!-- options: {model.__name__} -->"


def options_markdown(model: type, yaml_text: str | None = None) -> str:
    """A Markdown table of every option of `model` (nested models flattened as a.b, lists as
    a[].b); descriptions missing from the model are taken from `yaml_text`'s comments."""
    fallback = yaml_comments(yaml_text, set(option_keys(model))) if yaml_text else {}
    rows = ["| option | default | type | what it is |", "| --- | --- | --- | --- |"]
    for key, field, kind, default in _fields(model, ""):
        description = field.description or fallback.get(key, "")
        rows.append(f"| `{key}` | {_cell(default)} | {_cell(kind)} | {_cell(description)} |")
    return "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _nested_model(annotation) -> tuple[type | None, str]:
    """(the pydantic model inside `annotation`, "" or "[]" when it is a list of them)."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, ""
    if get_origin(annotation) is list and get_args(annotation):
        item = get_args(annotation)[0]
        if isinstance(item, type) and issubclass(item, BaseModel):
            return item, "[]"
    return None, ""


def option_keys(model: type) -> list[str]:
    """Every option of `model` as its table names it (`a`, `a.b`, `a[].b`)."""
    return [key for key, *_ in _fields(model, "")]


def _fields(model: type, prefix: str):
    """(dotted key, field, type in words, default in words) of every option, depth first."""
    from pydantic_core import PydanticUndefined

    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        nested, suffix = _nested_model(field.annotation)
        if nested is not None:
            yield key, field, "list" if suffix else "mapping", "required" if field.is_required() else ""
            yield from _fields(nested, f"{key}{suffix}.")
            continue
        if field.default is not PydanticUndefined:
            default = "`null`" if field.default is None else f"`{_default_words(field.default)}`"
        elif field.default_factory is not None:
            default = f"`{_default_words(field.default_factory())}`"
        else:
            default = "required"
        yield key, field, type_words(field.annotation), default


def _default_words(value) -> str:
    """A default as it is written in YAML."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return value or '""'
    return str(value)


def type_words(annotation) -> str:
    """A type as a reader says it: `int`, `int or none`, `a, b or c`, `list of int`."""
    import types
    from pathlib import Path as _Path
    from typing import Annotated, Any, Literal, Union, get_args, get_origin

    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_words(args[0])
    if origin is Literal:
        words = [f"`{value}`" for value in args]
        return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]
    if origin in (Union, types.UnionType):
        named = [type_words(arg) for arg in args if arg is not type(None)]
        return " or ".join(named + (["none"] if type(None) in args else []))
    if origin in (list, tuple, set, frozenset):
        return f"list of {type_words(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping of {type_words(args[1])}" if len(args) == 2 and args[1] is not Any else "mapping"
    if annotation is _Path:
        return "path"
    if annotation is Any:
        return "any"
    if getattr(annotation, "__module__", "") == "collections.abc" or origin is not None:
        return "callable" if "Callable" in str(annotation) else str(annotation)
    return getattr(annotation, "__name__", str(annotation))


# A YAML line with a key (`  name: value  # comment`), or one commented out (`# name: value`).
_KEY = re.compile(
    r"^(?P<indent> *)(?P<off>#\s?)?(?P<key>[a-z_][a-z0-9_]*):(?P<value>[^#]*?)\s*(?:#\s?(?P<note>.*))?$"
)


def yaml_comments(text: str, known: set[str]) -> dict[str, str]:
    """Each option's comment in a shipped YAML file, by dotted key: the comment on its line
    (and the lines continuing it in the same column), else the comment block right above it.
    A block above a run of keys also describes the later keys of the run that it names.
    Commented-out keys (`# photos: ~/photos/ada`) count when `known` names them."""
    found: dict[str, str] = {}
    block: list[tuple[str | None, str]] = []  # (the key a line comments out, or None; its text)
    group = ""  # the block over the current run of keys
    stack: list[tuple[int, str]] = []  # (indent, key) of the mappings we are inside
    last: tuple[str, int] | None = None  # (key, column of its comment): continuation lines
    for line in text.splitlines():
        if not line.strip():
            block, group, last = [], "", None
            continue
        match = _KEY.match(line)
        indent = len(match["indent"]) if match else 0
        key = None
        if match:
            key = ".".join([*(name for depth, name in stack if depth < indent), match["key"]])
            if match["off"] and key not in known:
                match = key = None
        if match is None:
            if last is not None and _continues(line, last[1]):
                found[last[0]] += " " + line[last[1] + 1 :].strip()
                continue
            last = None
            block.append((None, line.strip().lstrip("#").strip()))
            continue
        last = (key, line.index("#", line.index(":"))) if match["note"] else None
        if match["off"]:  # a commented-out setting: the prose above it, unless it has its own note
            prose = " ".join(words for owner, words in block if owner is None)
            found[key] = match["note"].strip() if match["note"] else prose
            block.append((key, line.strip().lstrip("#").strip()))
            continue
        stack = [(depth, name) for depth, name in stack if depth < indent] + [(indent, match["key"])]
        fresh = bool(block)  # a comment block right above this key: it starts a new run
        if fresh:
            group, block = _block_text(block, key, match["key"]), []
        if match["note"]:
            found[key] = match["note"].strip()
        elif group and (
            fresh or re.search(rf"(?<![A-Za-z0-9_]){re.escape(match['key'])}(?![A-Za-z0-9_])", group)
        ):
            found[key] = group
    return found


def _block_text(block: list[tuple[str | None, str]], key: str, name: str) -> str:
    """A comment block as the description of `key`: its prose, and a commented-out `name: ...`
    line of this same key read as prose without its `name:`."""
    lines = [
        words.removeprefix(f"{name}:").strip() if owner == key or words.startswith(f"{name}:") else words
        for owner, words in block
        if owner in (None, key)
    ]
    return " ".join(lines)


def _continues(line: str, column: int) -> bool:
    """Whether a comment line continues the comment that starts at `column` on the line above."""
    return len(line) > column and line[column] == "#" and not line[:column].strip("# ")


def sync_markdown_options(model: type, text: str, yaml_text: str | None = None) -> str:
    """`text` (a docs page holding `model`'s two markers) with the table between them regenerated."""
    head, start, rest = text.partition(options_start(model))
    _, end, tail = rest.partition(OPTIONS_END)
    if not start or not end:
        raise ValueError(f"the page lacks the markers {options_start(model)} ... {OPTIONS_END}")
    return f"{head}{start}\n\n{options_markdown(model, yaml_text)}\n{OPTIONS_END}{tail}"


def docs_pages(docs: Path, configs: Path):
    """(config model, its docs page, the page synced, the shipped YAML text or None) per page."""
    import importlib

    for module, name, page, yaml_name in DOCS_PAGES:
        model = getattr(importlib.import_module(module), name)
        yaml_text = (configs / yaml_name).read_text(encoding="utf-8") if yaml_name else None
        text = (docs / page).read_text(encoding="utf-8")
        yield model, docs / page, sync_markdown_options(model, text, yaml_text), yaml_text


def tables_on_page(text: str) -> list[str]:
    """The config models whose tables a page holds."""
    return _OPTIONS_START.findall(text)
