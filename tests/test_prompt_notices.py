"""A truncated prompt is said once per prompt, in one short line (diffusers quotes the whole
dropped text on every render)."""

from __future__ import annotations

import io
import logging

from headshot.models import prompt_notices

DIFFUSERS_NOTICE = (
    "The following part of your input was truncated because CLIP can only handle sequences up to 77 tokens: "
)


def test_a_truncation_warns_once_and_short_and_other_warnings_pass():
    from diffusers.utils import logging as diffusers_logging

    prompt_notices.install()
    prompt_notices.install()  # idempotent
    handler = logging.getLogger("diffusers").handlers[0]
    assert sum(isinstance(f, prompt_notices.ShortTruncationNotice) for f in handler.filters) == 1
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        logger = diffusers_logging.get_logger(
            "diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion"
        )
        dropped = ["watermark, text, cluttered desk, fluorescent glare " * 6]
        for _ in range(3):  # three seeds of one template
            logger.warning(DIFFUSERS_NOTICE + str(dropped))
        logger.warning(DIFFUSERS_NOTICE + str(["another tail"]))
        logger.warning("a real deprecation")
    finally:
        handler.setStream(previous)
    lines = stream.getvalue().splitlines()
    short = "prompt longer than 77 tokens: its end is ignored, from "
    assert lines == [
        short + '"watermark, text, cluttered desk, fluorescent glare ..."',
        short + '"another tail ..."',
        "a real deprecation",
    ]
