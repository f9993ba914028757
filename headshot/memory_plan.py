"""Memory plan before work: the peak accelerator memory a run will need, estimated before loading.

Why: an out-of-memory crash after minutes of set-up is the most common complaint about LoRA
trainers. `finetune` (and `generate`) print this estimate first and stop, listing options
that would fit, when the device has less free memory than it needs.

What is counted, each from the model's own files (or, for a model not on disk, from the shipped
full-size configs: headshot/full_size.py), never from its name:
- weights: every component the family loads, read from the safetensors headers (shapes and
  dtypes, no data) or, without weight files, from the component built on the `meta` device, in
  the dtype they will be held in; the quantized denoiser's linear weights at the backend's bits
  (plus its scales);
- the LoRA: the denoiser built on the meta device with the adapter added by the same function
  training uses (training/adapters.add_denoiser_lora), its LoRA parameters counted; float32
  weights, gradients and AdamW's two moments (8-bit: 1 byte each);
- activations: that meta model runs one training forward at the run's resolution and batch, on
  inputs of the family's training layout derived from the configs (family.training_latent_shape,
  family.prompt_embedding_shape); every tensor autograd saves for the backward pass is counted
  once (fused attention saves q, k, v, the output and the log-sum-exp, as torch's flash kernels
  do). With gradient checkpointing, only the checkpointed blocks' inputs plus the largest block's
  own activations count. The same function traces every family.
On a GPU the frozen text encoders and VAE leave it after caching (frozen_inputs.offload_frozen_parts),
so the peak is the largest of: caching (all weights), training (denoiser, LoRA state,
activations), validation samples (all weights and the LoRA state). On a CPU everything loaded
stays resident, so all of it counts at once. When the prompt embeddings and latents are cached
on disk the text encoders and the VAE are not loaded for set-up at all: they count only from the
first validation sample on (`frozen_loaded`), or not at all when no sample is rendered.
"""

from __future__ import annotations

import contextlib
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

from headshot.bounded_io import read_json_object
from headshot.errors import HeadshotError

_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_BYTES.update({"F8_E4M3": 1, "F8_E5M2": 1})
GIB = 1024**3


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def numel(self) -> int:
        return functools.reduce(lambda a, b: a * b, self.shape, 1)


def component_tensors(folder: Path, component: str, variant: str | None = None) -> list[Tensor]:
    """Every tensor of one component of a diffusers folder, from its safetensors headers only."""
    from safetensors import safe_open

    files = sorted((Path(folder) / component).glob("*.safetensors"))
    if variant:
        files = [f for f in files if f".{variant}." in f.name] or files
    else:
        plain = [f for f in files if len(f.name.split(".")) == 2]  # no ".fp16." variant infix
        files = plain or files
    tensors = []
    for path in files:
        try:
            with safe_open(str(path), framework="pt") as handle:
                for name in handle.keys():
                    part = handle.get_slice(name)
                    tensors.append(Tensor(name, tuple(part.get_shape()), part.get_dtype()))
        except Exception as exc:  # safetensors' own error types for a damaged header
            raise HeadshotError(f"{path}: cannot read its safetensors header ({exc})") from None
    return tensors


def components(folder: Path) -> dict[str, list[str]]:
    """model_index.json's components: name -> [library, class]."""
    index = read_json_object(Path(folder) / "model_index.json", "a diffusers model_index.json")
    return {
        name: value
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0]
    }


# Tensors of components built from configs alone, by (library, class, config): a plan builds each once.
_CONFIG_TENSORS: dict[str, list[Tensor]] = {}


def model_tensors(folder: Path, family, variant: str | None = None) -> dict[str, list[Tensor]]:
    """The tensors of every component the family loads (the text encoders, denoiser and VAE,
    not a checker it loads as None), from their safetensors headers; a folder of configs
    without weights (the shipped full-size configs) from the component built on the meta device."""
    from headshot.full_size import component_config

    skipped = {name for name, value in family.load_kwargs().items() if value is None}
    tensors = {}
    for name, (library, class_name) in components(folder).items():
        if name in skipped:
            continue
        found = component_tensors(folder, name, variant)
        if not found and library in ("diffusers", "transformers") and _is_model_folder(folder, name):
            config = component_config(folder, name)  # a readable config, or a one-line error naming it
            key = json.dumps([library, class_name, config], sort_keys=True)
            if key not in _CONFIG_TENSORS:
                _CONFIG_TENSORS[key] = meta_tensors(meta_model(folder, name, library, class_name))
            found = list(_CONFIG_TENSORS[key])
        if found:
            tensors[name] = found
    return tensors


def _is_model_folder(folder: Path, name: str) -> bool:
    config = Path(folder) / name / "config.json"
    return config.is_file() and not (Path(folder) / name / "tokenizer_config.json").is_file()


def meta_model(folder: Path, name: str, library: str, class_name: str, dtype=None):
    from headshot.full_size import meta_component

    return meta_component(folder, name, library, class_name, dtype)


def meta_tensors(module) -> list[Tensor]:
    """A module's parameters (a tied weight once) and persistent buffers, as header entries."""
    names = {id(p): n for n, p in module.named_parameters()}
    entries = [Tensor(n, tuple(p.shape), "F32") for n, p in module.named_parameters()]
    kept = set(module.state_dict().keys())
    for name, buffer in module.named_buffers():
        if name in kept and id(buffer) not in names:
            entries.append(Tensor(name, tuple(buffer.shape), "F32" if buffer.is_floating_point() else "I64"))
    return entries


def weight_bytes(tensors: list[Tensor], element_size: int, quantize_base: str = "none") -> int:
    """Bytes of a component's weights held at `element_size`, linear weights quantized if asked."""
    from headshot.quantize import BACKENDS

    backend = BACKENDS.get(quantize_base)
    total = 0
    for tensor in tensors:
        size = element_size if tensor.dtype.startswith(("F", "BF")) else _BYTES.get(tensor.dtype, 4)
        if backend is not None and len(tensor.shape) == 2 and tensor.name.endswith(".weight"):
            rows = tensor.shape[0]
            if backend.bits == 8:  # int8 / float8, one scale per output row
                total += tensor.numel + rows * 4
            else:  # NF4: half a byte per weight, one absmax per 64 weights
                total += tensor.numel // 2 + (tensor.numel // 64) * 4
        else:
            total += tensor.numel * size
    return total


@dataclass
class MemoryEstimate:
    device: str  # cuda or cpu
    weights: dict[str, int]  # bytes per component as held in the run
    denoiser: str
    lora_parameters: int
    lora_state: int  # weights + gradients + optimizer moments
    activations: int | None  # None: the trace failed (noted)
    note: str = ""
    options: dict = field(default_factory=dict)

    # The denoiser's peak while it loads, in place of its weights then (a quantized denoiser is
    # read at full precision first); 0 when it loads as it is held.
    loading: int = 0
    working: int = 0  # the backward pass's transient copy of the largest weight (kernels' own layout)
    sampling: int = 0  # a validation sample's working memory (a denoiser call or the VAE's decode)
    frozen: tuple[str, ...] = ()  # the frozen components (text encoders, VAE)
    # When they are in memory: "training" (from set-up or a mid-run validation sample on),
    # "after" (only for the final validation samples), "never" (cached inputs, no samples).
    frozen_loaded: str = "training"

    @property
    def peak(self) -> int:
        weights = sum(self.weights.values())
        held = weights
        if self.frozen_loaded != "training":
            held -= sum(self.weights.get(name, 0) for name in self.frozen)
        denoiser = self.weights[self.denoiser]
        training = self.lora_state + (self.activations or 0) + self.working
        samples = weights + self.lora_state + self.sampling if self.frozen_loaded != "never" else 0
        loading = held - denoiser + self.loading if self.loading else held
        if self.device == "cpu":
            return max(held + training, loading, samples)
        return max(samples, loading, denoiser + training)

    def describe(self) -> str:
        parts = ", ".join(f"{name} {gib(size)}" for name, size in self.weights.items())
        activations = gib(self.activations) if self.activations is not None else "not estimated"
        return (
            f"{gib(self.peak)} on {self.device} (weights: {parts}; LoRA {self.lora_parameters:,} parameters "
            f"with gradients and optimizer state {gib(self.lora_state)}; activations {activations})"
        )

    def record(self) -> dict:
        return {
            "device": self.device,
            "estimated_peak_bytes": self.peak,
            "weights_bytes": dict(self.weights),
            "lora_state_bytes": self.lora_state,
            "activation_bytes": self.activations,
            "options": dict(self.options),
            "frozen_parts_loaded": self.frozen_loaded,
            **({"note": self.note} if self.note else {}),
        }


def gib(size: int) -> str:
    return f"{size / GIB:.2f} GiB" if size >= GIB / 10 else f"{size / 1024**2:.1f} MiB"


def free_memory(device: str) -> int:
    """Free bytes where the run will put its tensors: the GPU's free memory, else available RAM."""
    if device == "cuda":
        import torch

        return int(torch.cuda.mem_get_info()[0])
    import psutil

    return int(psutil.virtual_memory().available)


@contextlib.contextmanager
def saved_tensor_counter(skip: set[int], total: list[int], keep: list):
    """Count the bytes of every distinct tensor autograd saves (parameters, in `skip`, excluded)."""
    import torch

    def pack(tensor):
        base = tensor._base if tensor._base is not None else tensor
        if id(base) not in skip:
            skip.add(id(base))
            keep.append(base)  # alive until the trace ends, so no id is reused
            total[0] += base.numel() * base.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        yield


def largest_saved(keep: list) -> int:
    return max((t.numel() * t.element_size() for t in keep), default=0)


class _FusedAttention:
    """scaled_dot_product_attention as the fused kernels save it: q, k, v, output, log-sum-exp."""

    @staticmethod
    def make():
        import torch

        class Function(torch.autograd.Function):
            @staticmethod
            def forward(ctx, query, key, value):
                out = query.new_empty((*query.shape[:-1], value.shape[-1]))
                lse = query.new_empty(query.shape[:-1], dtype=torch.float32)
                ctx.save_for_backward(query, key, value, out, lse)
                return out

            @staticmethod
            def backward(ctx, grad):  # never run: the trace has no backward pass
                raise NotImplementedError

        def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
            return Function.apply(query, key, value)

        return attention


def peak_live_bytes(run) -> int:
    """The most bytes of tensors alive at once while `run()` computes on the meta device (inference:
    nothing is saved for a backward pass, so a tensor lives until its last Python reference goes).

    Every operator's fresh output (not a view, not an in-place result) is counted from its creation
    until it is garbage, which CPython's reference counting makes immediate. Attention runs as a
    fused kernel does on a GPU: only its output is made (no token x token matrix)."""
    import weakref

    import torch
    import torch.nn.functional as functional
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    live, peak = [0], [0]
    seen: dict[int, weakref.ref] = {}

    def release(key: int, size: int) -> None:
        live[0] -= size
        seen.pop(key, None)

    class Track(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_leaves(out):
                if not isinstance(tensor, torch.Tensor) or tensor._is_view():
                    continue
                known = seen.get(id(tensor))
                if known is not None and known() is tensor:
                    continue  # an in-place operator's result: counted when it was made
                size = tensor.numel() * tensor.element_size()
                live[0] += size
                peak[0] = max(peak[0], live[0])
                seen[id(tensor)] = weakref.ref(tensor)
                weakref.finalize(tensor, release, id(tensor), size)
            return out

    def fused(query, key, value, *args, **kwargs):
        return query.new_empty((*query.shape[:-1], value.shape[-1]))

    original = functional.scaled_dot_product_attention
    functional.scaled_dot_product_attention = fused
    try:
        with torch.no_grad(), Track():
            run()
    finally:
        functional.scaled_dot_product_attention = original
    return peak[0]


def trace_activations(build, run, checkpointing: bool) -> int:
    """Saved-tensor bytes of one training forward of the meta model `build()` run by `run(model)`."""
    import torch
    import torch.nn.functional as functional

    model = build()
    skip = {id(p) for p in model.parameters()}
    total, keep = [0], []
    blocks: list[int] = []

    def checkpoint(function, *args, **kwargs):
        inputs = [a for a in args if isinstance(a, torch.Tensor) and a.requires_grad]
        for tensor in inputs:
            if id(tensor) not in skip:
                skip.add(id(tensor))
                keep.append(tensor)
                total[0] += tensor.numel() * tensor.element_size()
        inner = [0]
        with saved_tensor_counter(set(skip), inner, keep):
            output = function(*args, **kwargs)
        blocks.append(inner[0])
        return output

    if checkpointing:
        model.enable_gradient_checkpointing()
        for module in model.modules():
            if hasattr(module, "_gradient_checkpointing_func"):
                module._gradient_checkpointing_func = checkpoint
    original = functional.scaled_dot_product_attention
    functional.scaled_dot_product_attention = _FusedAttention.make()
    try:
        with saved_tensor_counter(skip, total, keep):
            model.train()
            run(model)
    finally:
        functional.scaled_dot_product_attention = original
    # The backward pass works on top of what was saved: an activation's gradient and the
    # layer's output gradient at a time (2 x the largest saved tensor).
    return total[0] + (max(blocks) if blocks else 0) + 2 * largest_saved(keep)


def training_inputs(folder: Path, comps: dict, family, config, resolution: int, dtype, device="meta"):
    """One training batch's denoiser inputs at `resolution` (prior preservation doubles it), of the
    shapes the family's encoders give, read from the configs: (latents, prompts, time_ids)."""
    import torch

    from headshot.families.base import PromptEmbeddings
    from headshot.full_size import component_config

    count = config.batch_size * (2 if config.prior_preservation else 1)
    tokens, width, pooled = prompt_shape(folder, family, config)
    latent = family.training_latent_shape(component_config(folder, "vae"), resolution)
    prompts = PromptEmbeddings(
        torch.empty(count, tokens, width, device=device, dtype=dtype),
        None if pooled is None else torch.empty(count, pooled, device=device, dtype=dtype),
    )
    latents = torch.empty(count, *latent, device=device, dtype=dtype)
    time_ids = family.time_ids((resolution, resolution), resolution)
    return latents, prompts, time_ids.reshape(1, -1).repeat(count, 1).to(device, dtype)


def prompt_shape(folder: Path, family, config) -> tuple[int, int, int | None]:
    """(tokens, width, pooled width or None) of one prompt's embeddings for the model in `folder`,
    from its text encoders' configs and its tokenizers' tokenizer_config.json (no encoder is run)."""
    from headshot.full_size import component_config

    comps = components(folder)
    encoders = {name: component_config(folder, name) for name in family.text_encoder_names if name in comps}
    tokenizers = {}
    for name in family.tokenizer_names:
        path = Path(folder) / name / "tokenizer_config.json"
        tokenizers[name] = read_json_object(path, "a tokenizer config") if path.is_file() else {}
    return family.prompt_embedding_shape(encoders, tokenizers, config)
