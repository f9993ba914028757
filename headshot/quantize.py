"""A quantized frozen base: `quantize_base: none | int8 | fp8 | nf4`, through diffusers' own configs.

Why: FLUX.1-dev's transformer is about 24 GB in bf16, so LoRA training on a 24 GB card needs
the frozen base in fewer bits. Only the denoiser (the family names it) is quantized; the
LoRA layers stay float32 and train on top (peft wraps torchao's and bitsandbytes' linear
layers), so the exported LoRA is an ordinary one that also loads into the unquantized base.

Backends, chosen by what runs where:
- int8: torchao `Int8WeightOnlyConfig` (CPU and CUDA);
- fp8: torchao `Float8WeightOnlyConfig` (CPU and CUDA; float8 storage, computed in the base dtype);
- nf4: bitsandbytes 4-bit NF4 (`BitsAndBytesConfig`), CUDA only.
Every check runs before a model is loaded: a missing backend or a device it cannot run on is
one line naming the option and what it needs.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

from headshot.errors import HeadshotError

QuantizeBase = Literal["none", "int8", "fp8", "nf4"]
QUANTIZE_DESCRIPTION = (
    "the frozen denoiser's weights: none (the base dtype), int8 or fp8 (torchao, weight-only; "
    "CPU and CUDA), nf4 (bitsandbytes 4-bit, CUDA only); LoRA weights stay float32"
)


@dataclass(frozen=True)
class Backend:
    option: str
    package: str  # the import name
    install: str  # how to get it
    cuda_only: bool
    bits: int  # bits per quantized weight (the memory plan's weight size)
    # torchao's weight-only linears dequantize above autograd, so a training forward saves each
    # layer's weight at full precision for the backward pass (gradient checkpointing bounds it);
    # bitsandbytes' 4-bit matmul keeps the packed weight and dequantizes in the backward pass.
    saves_dequantized: bool = False


BACKENDS = {
    "int8": Backend(
        "int8", "torchao", "pip install -e '.[quant]' (torchao)", False, 8, saves_dequantized=True
    ),
    "fp8": Backend("fp8", "torchao", "pip install -e '.[quant]' (torchao)", False, 8, saves_dequantized=True),
    "nf4": Backend("nf4", "bitsandbytes", "pip install -e '.[cuda]' (bitsandbytes)", cuda_only=True, bits=4),
}


def check_quantization(option: str, device_type: str, field: str = "quantize_base") -> None:
    """Raise a HeadshotError when `option` cannot run here; call it before loading any model."""
    backend = BACKENDS.get(option)
    if backend is None:
        return
    if backend.cuda_only and device_type != "cuda":
        raise HeadshotError(
            f"option '{field}': {option} needs a CUDA GPU and {backend.package} "
            f"({backend.install}); this machine runs on {device_type}; use int8 or fp8 here"
        )
    if importlib.util.find_spec(backend.package) is None:
        raise HeadshotError(
            f"option '{field}': {option} needs {backend.package}, not installed: {backend.install}"
        )


def pipeline_quantization(option: str, component: str, compute_dtype):
    """A diffusers `PipelineQuantizationConfig` quantizing `component` (the denoiser), or None."""
    if option == "none":
        return None
    from diffusers import PipelineQuantizationConfig

    if option == "nf4":
        from diffusers import BitsAndBytesConfig

        config = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype
        )
    else:
        from diffusers import TorchAoConfig
        from torchao.quantization import Float8WeightOnlyConfig, Int8WeightOnlyConfig

        config = TorchAoConfig(Int8WeightOnlyConfig() if option == "int8" else Float8WeightOnlyConfig())
    return PipelineQuantizationConfig(quant_mapping={component: config})


def base_precision(quantize_base: str, dtype) -> str:
    """How the frozen base computes, as training.json and the render sidecars record it:
    e.g. "bf16", "fp32", "int8+bf16" (int8 weights computed in bf16)."""
    name = dtype_name(dtype)
    return name if quantize_base == "none" else f"{quantize_base}+{name}"


def dtype_name(dtype) -> str:
    import torch

    return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def quantized_modules(module) -> int:
    """How many of a module's weights are held by a quantization backend (0: none)."""
    import torch

    count = 0
    for parameter in module.parameters():
        if type(parameter.data) is not torch.Tensor and not isinstance(parameter.data, torch.nn.Parameter):
            count += 1  # a torchao tensor subclass
        elif parameter.dtype in (torch.uint8, torch.int8) or type(parameter).__name__ == "Params4bit":
            count += 1  # bitsandbytes
    return count
