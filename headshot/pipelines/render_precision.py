"""How `generate` holds the base model: its quantization and dtype, and the memory that needs.

Why: a LoRA trained against a quantized base and used on an unquantized one renders
differently from the samples its training showed, a common complaint about other trainers. By
default (`quantize_base: auto`, `dtype: auto`) generate renders at the precision training.json
records, the one the validation samples were rendered at; any other precision is allowed but
warned about. The memory plan prints the memory the weights will hold before loading and stops,
naming options that would fit, when the device has less free memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headshot import memory_plan as mp
from headshot.errors import HeadshotError
from headshot.quantize import BACKENDS, base_precision, check_quantization

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass
class RenderPrecision:
    quantize_base: str
    dtype_name: str  # fp32 / fp16 / bf16
    trained: str | None  # training.json's base_precision (None: recorded before the option)
    warning: str | None = None

    @property
    def dtype(self):
        import torch

        return getattr(torch, _DTYPES[self.dtype_name])

    @property
    def name(self) -> str:
        """What the render sidecars record as `dtype`: "fp32" unquantized, "int8+fp32" otherwise."""
        return base_precision(self.quantize_base, self.dtype)


def choose_precision(options, record, device: str) -> RenderPrecision:
    """The precision to render at; a backend that cannot run here is an error only when asked for."""
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    trained = record.base_precision
    trained_quantization, _, trained_dtype = (trained or "").rpartition("+") if trained else ("", "", "")
    trained_quantization = trained_quantization or "none"
    quantize = options.quantize_base
    note = None
    if quantize == "auto":
        quantize = trained_quantization
        backend = BACKENDS.get(quantize)
        if backend is not None and backend.cuda_only and device_type != "cuda":
            note = f"{quantize} needs a CUDA GPU"
            quantize = "none"
    check_quantization(quantize, device_type, field="performance.quantize_base")
    name = options.dtype
    if name == "auto":
        if device_type == "cuda":
            name = trained_dtype if trained_dtype in _DTYPES else "fp16"
        else:
            name = "fp32"
    if name == "fp16" and device_type != "cuda":
        raise HeadshotError("performance.dtype: fp16 needs a CUDA GPU; on a CPU use fp32 or bf16")
    precision = RenderPrecision(quantize, name, trained)
    if trained is not None and precision.name != trained:
        why = f" ({note})" if note else ""
        precision.warning = (
            f"the LoRA was trained against the base at {trained}; rendering at {precision.name}{why}, so the "
            "headshots may differ from its validation samples (performance.quantize_base and dtype: "
            "auto render at the trained precision)"
        )
    return precision


def estimate_render(
    folder: Path, family, precision: RenderPrecision, lora_bytes: int, options, batch: int, resolution=None
):
    """(peak bytes, parts) of rendering: the weights (all of them, the largest component with model
    CPU offload, none resident with sequential offload), the LoRA, and with `resolution` the
    working memory of the larger of one denoiser call and the VAE's decode (render_activations)."""
    import torch

    element = torch.tensor([], dtype=precision.dtype).element_size()
    weights = {}
    for name, tensors in mp.model_tensors(folder, family).items():
        quantize = precision.quantize_base if name == family.denoiser else "none"
        weights[name] = mp.weight_bytes(tensors, element, quantize)
    if options.cpu_offload == "model":
        held = max(weights.values(), default=0)
    elif options.cpu_offload == "sequential":
        held = 0  # one layer at a time
    else:
        held = sum(weights.values())
    parts = {"weights": held, "lora": lora_bytes}
    if resolution is not None:
        from headshot.training.memory_check import render_activations

        parts.update(render_activations(folder, family, resolution, precision.dtype, batch))
    peak = held + lora_bytes + max(parts.get("denoiser_call", 0), parts.get("vae_decode", 0))
    return peak, weights, parts


def plan_render(folder: Path, family, precision, lora_file, options, batch: int, device: str, say) -> dict:
    """Print the estimate; stop with the options that fit when it exceeds the free memory."""
    if folder is None:
        say("memory plan: skipped (a single-file checkpoint: its parts are known only once it is loaded)")
        return {"estimated_peak_bytes": None}
    device_type = "cuda" if device.startswith("cuda") else "cpu"
    peak, weights, _ = estimate_render(
        folder, family, precision, Path(lora_file).stat().st_size, options, batch
    )
    free = mp.free_memory(device_type)
    parts = ", ".join(f"{name} {mp.gib(size)}" for name, size in weights.items())
    say(
        f"memory plan: estimated peak {mp.gib(peak)} on {device_type} (weights: {parts}); {mp.gib(free)} free"
    )
    if peak > free:
        fitting = []
        for change in ({"cpu_offload": "model"}, {"cpu_offload": "sequential"}):
            if device_type == "cuda" and options.cpu_offload == "none":
                smaller, _, _ = estimate_render(
                    folder, family, precision, Path(lora_file).stat().st_size,
                    options.model_copy(update=change), batch,
                )  # fmt: skip
                if smaller <= free:
                    fitting.append(f"performance.cpu_offload: {change['cpu_offload']} ({mp.gib(smaller)})")
        if precision.quantize_base == "none":
            quantized = RenderPrecision("int8", precision.dtype_name, precision.trained)
            smaller, _, _ = estimate_render(
                folder, family, quantized, Path(lora_file).stat().st_size, options, batch
            )
            if smaller <= free:
                fitting.append(f"performance.quantize_base: int8 ({mp.gib(smaller)})")
        hint = ("; options that would fit: " + "; ".join(fitting)) if fitting else ""
        raise HeadshotError(
            f"{folder}: rendering needs an estimated {mp.gib(peak)} on {device_type}, "
            f"{mp.gib(free)} is free{hint} (performance.memory_check: false to try anyway)"
        )
    return {"estimated_peak_bytes": peak, "weights_bytes": weights}
