"""Which of the libraries' own notices a headshot user sees: all of them but known noise.

transformers and diffusers print notices that say nothing to a user of this tool (that
torchvision is absent and a PIL image processor is used instead; that a UNet-only LoRA has
no text-encoder keys). They are dropped one by one, by their message, so that a real
warning from the same libraries (a prompt truncated to CLIP's 77 tokens, a deprecation)
still shows. Installed by the command line before any library is used, without importing
them: `headshot --help` must not pay the seconds torch and diffusers take to import, so the
filter goes onto their log handlers right after whatever command first imports them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import logging
import re
import sys
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


# The libraries whose own log handlers print the notices above.
LIBRARIES = ("transformers", "diffusers")


def install() -> None:
    """Drop the known noise from transformers' and diffusers' log output (idempotent).

    A library already imported is filtered now; one not imported yet is filtered as soon as
    it is (an import hook), so installing costs nothing for commands that never load them.
    """
    noise_filter = _DropNoise()
    for name in OTHER_LOGGERS:  # before diffusers is imported: it imports torchao
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropNoise) for f in logger.filters):
            logger.addFilter(noise_filter)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=pattern.pattern)
    for library in LIBRARIES:
        if library in sys.modules:
            _filter_library(library)
    waiting = any(library not in sys.modules for library in LIBRARIES)
    if waiting and not any(isinstance(finder, _FilterOnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _FilterOnImport())


def _filter_library(library: str) -> None:
    """Put the noise filter on the handlers of `library`'s root logger (configured now)."""
    library_logging = importlib.import_module(f"{library}.utils.logging")
    library_logging.get_logger()  # configures the library's own handler
    for handler in logging.getLogger(library).handlers:
        if not any(isinstance(f, _DropNoise) for f in handler.filters):
            handler.addFilter(_DropNoise())


class _FilterOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: lets the other finders find transformers / diffusers, then runs
    `_filter_library` right after the package's own `__init__` has executed."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in LIBRARIES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_filter(module):
            exec_module(module)
            _filter_library(fullname)

        loader.exec_module = exec_then_filter  # this spec's own loader instance
        return spec
