"""Which of the libraries' own notices a headshot user sees: all of them but known noise.

transformers and diffusers print notices that say nothing to a user of this tool (that
torchvision is absent and a PIL image processor is used instead; that a UNet-only LoRA has
no text-encoder keys). They are dropped one by one, by their message, so that a real
warning from the same libraries (a prompt truncated to CLIP's 77 tokens, a deprecation)
still shows. Installed by the command line before any library is used.
"""

from __future__ import annotations

import logging
import re
import warnings

# Each pattern names one notice and why it is noise here.
NOISE = (
    # transformers 5 without torchvision: the PIL processors are what headshot wants anyway.
    re.compile(r"`\w+ImageProcessor` requires torchvision \(not installed\); falling back"),
    # Loading a LoRA trained on the UNet alone: there is nothing to load into the encoders.
    re.compile(r"No LoRA keys associated to CLIPTextModel\w* found with the prefix='text_encoder"),
    # A dtype cast of a model with no modules to keep in float32 loses nothing.
    re.compile(r"There are modules in \w+ that should be kept in float32: \[\]\."),
    # Said once more, better, by the pipeline: "The following part of your input was truncated".
    re.compile(r"Token indices sequence length is longer than the specified maximum sequence length"),
    # torchao (quantize_base) on a CPU-only or older GPU: its optional CUDA kernels do not load.
    re.compile(r"Failed to load .*torchao.*\.so"),
    # torchao registers its enums with torch.compile the old way; nothing headshot compiles.
    re.compile(r"is an Enum subclass and is now natively supported by torch.compile"),
    # diffusers' loader of torchao-serialized checkpoints; headshot quantizes on load instead.
    re.compile(r"Unable to import `torchao` Tensor objects"),
    # torchao's int8 weight-only layers compute in float32 too (tests/test_quantize.py trains so).
    re.compile(r"You are trying to set torch_dtype to torch.float32 for integer quantization"),
)
# Loggers outside transformers and diffusers that print the notices above on import.
OTHER_LOGGERS = ("torchao", "torch.utils._pytree")


class _DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.search(message) for pattern in NOISE)


def install() -> None:
    """Drop the known noise from transformers' and diffusers' log output (idempotent)."""
    noise_filter = _DropNoise()
    for name in OTHER_LOGGERS:  # before diffusers is imported: it imports torchao
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(noise_filter)
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    for library in (transformers_logging, diffusers_logging):
        library.get_logger()  # configures the library's own handler
        root = logging.getLogger(library.__name__.split(".")[0])
        for handler in root.handlers:
            if not any(isinstance(f, _DropNoise) for f in handler.filters):
                handler.addFilter(noise_filter)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern.pattern)
