"""Text shown on a terminal that headshot did not write itself, escaped.

A file name, a folder given on the command line, or a signer's name read from a manifest can
hold control characters: ESC starts a terminal command that recolours or rewrites the screen
or sets the window title; U+202E reverses what follows (`gpj.exe` shows as `exe.jpg`).
`shown` writes every such character as a visible escape (`\\x1b`, `\\u202e`); `markup` also
escapes rich's `[style]` brackets for text printed through rich. Line breaks are kept by
`shown_lines` only, for messages that are several lines on purpose.
"""

from __future__ import annotations

import unicodedata

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
