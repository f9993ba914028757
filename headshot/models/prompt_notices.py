"""A prompt longer than the text encoder's window: said once per prompt, in one short line.

diffusers warns on every render that it dropped the end of a prompt, quoting the whole
dropped text (about 350 characters per notice with a long negative prompt), once per seed and
template. The truncation is real and worth knowing, so the notice stays, rewritten to one
line that names the window and the first dropped words, and said once per dropped text.
Installed on diffusers' own log handler when a model is loaded (headshot.models.loading).
"""

from __future__ import annotations

import logging
import re

_TRUNCATED = re.compile(
    r"The following part of your input was truncated because .*?(?P<limit>\d+) tokens?: (?P<dropped>.*)",
    re.DOTALL,
)


class ShortTruncationNotice(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        match = _TRUNCATED.match(record.getMessage())
        if match is None:
            return True
        dropped = match["dropped"]
        if dropped in self.seen:
            return False
        self.seen.add(dropped)
        words = " ".join(dropped.strip("[]'\" ").split()[:6])
        record.msg = f'prompt longer than {match["limit"]} tokens: its end is ignored, from "{words} ..."'
        record.args = ()
        return True


def install() -> None:
    """Put the filter on diffusers' log handler (idempotent)."""
    import diffusers.utils.logging as diffusers_logging

    diffusers_logging.get_logger()  # configures the library's own handler
    for handler in logging.getLogger("diffusers").handlers:
        if not any(isinstance(f, ShortTruncationNotice) for f in handler.filters):
            handler.addFilter(ShortTruncationNotice())
