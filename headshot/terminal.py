"""Text shown on a terminal that headshot did not write itself, escaped.

A file name, a folder given on the command line, or a signer's name read from a manifest can
hold control characters: ESC starts a terminal command that recolours or rewrites the screen
or sets the window title; U+202E reverses what follows (`gpj.exe` shows as `exe.jpg`).
`shown` writes every such character as a visible escape (`\\x1b`, `\\u202e`); `markup` also
escapes rich's `[style]` brackets for text printed through rich. Line breaks are kept by
`shown_lines` only, for messages that are several lines on purpose.

The same module holds the other conventions of what a person reads: a path inside the current
folder is shown relative to it (`shown_path`), and a SHA-256 as its first 12 hex digits
(`short_hash`), enough to tell two apart.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

# Cc: C0/C1 controls (ESC, BEL, CR...); Cf: format characters (bidi overrides, zero-width);
# Zl/Zp: line and paragraph separators.
_UNSHOWN = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def shown(text: object) -> str:
    """`text` with every control and format character written as a visible escape."""
    return "".join(_escape(c) if unicodedata.category(c) in _UNSHOWN else c for c in str(text))


def shown_lines(text: object) -> str:
    """As `shown`, keeping the line breaks of a message written as several lines."""
    return "\n".join(shown(line) for line in str(text).split("\n"))


def markup(text: object) -> str:
    """`shown`, and safe inside rich markup: a `[red]` in a file name stays text."""
    from rich.markup import escape

    return escape(shown(text))


def shown_path(path: object) -> str:
    """`path` relative to the current folder when it lies inside it, else as it is; escaped."""
    try:
        absolute = Path(os.path.abspath(Path(str(path))))
        shown_as = absolute.relative_to(Path.cwd()) if absolute.is_relative_to(Path.cwd()) else path
    except (OSError, ValueError):
        shown_as = path
    return shown(shown_as)


SHORT_HASH = 12  # hex digits


def short_hash(value: object) -> str:
    """A SHA-256 (64 hex digits) as its first SHORT_HASH; anything else unchanged."""
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:SHORT_HASH]
    return text
