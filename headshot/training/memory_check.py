"""The memory plan of one `headshot finetune` run: estimate, compare with free memory, measure.

headshot/memory_plan.py counts; this module asks the family and the config what a run will
hold (which component is the denoiser, its LoRA targets, the prompts' shapes, the latent grid),
prints the estimate before the model is loaded, stops with the options that would fit when it
does not, and measures the real peak (CUDA: the allocator's peak; CPU: the growth of the
process's peak resident set over its size just before loading) for training.json.
"""

from __future__ import annotations

from pathlib import Path

from headshot import memory_plan as mp
from headshot.errors import HeadshotError
from headshot.training.adapters import add_denoiser_lora, add_text_encoder_lora, lora_parameter_count


def estimate_finetune(
    folder: Path, family, config, resolution: int, device: str, dtype, variant=None, frozen="training"
):
    """The MemoryEstimate of training `config` on the diffusers folder `folder` (nothing loaded).

    `frozen`: when the text encoders and the VAE are loaded (frozen_inputs.InputPlan
    .frozen_parts_loaded: "training", "after" the last step for the final samples, or "never").
    The denoiser is built on the meta device once, with the LoRA training adds (the same
    function adds it), and that model gives both the LoRA's size and the traced activations."""
    import torch

    from headshot.full_size import no_initialisation

    comps = mp.components(folder)
    element = torch.tensor([], dtype=dtype).element_size()
    weights, loading, working = {}, 0, 0
    for name, tensors in mp.model_tensors(folder, family, variant).items():
        quantize = config.quantize_base if name == family.denoiser else "none"
        weights[name] = mp.weight_bytes(tensors, element, quantize)
        if name == family.denoiser:
            full = [mp.weight_bytes([t], element) for t in tensors]
            working = max(full, default=0)
            if quantize != "none":
                # The denoiser's own peak while it loads, in place of its quantized weights then:
                # on the CPU diffusers reads the file into memory and makes the full-precision
                # tensors from it (2 x the file; measured 1.00x on the tiny FLUX and SDXL, int8 and
                # fp8), then quantizes; on a GPU one full-precision tensor at a time is added.
                loading = 2 * sum(full) if device == "cpu" else weights[name] + max(full)
    denoiser = meta_denoiser(folder, comps, family, config, dtype)
    lora = lora_parameter_count(denoiser)
    if config.train_text_encoder:
        for name in family.text_encoder_names:
            if name in comps:
                encoder = mp.meta_model(folder, name, *comps[name])
                with torch.device("meta"), no_initialisation():
                    add_text_encoder_lora(family, encoder, config)
                lora += lora_parameter_count(encoder)
    moments = 2 if config.use_8bit_adam else 8  # AdamW's two moments: 1 byte each in 8 bits, else 4
    note, activations = "", None
    try:
        activations = trace_training(folder, comps, family, config, resolution, dtype, denoiser)
    except Exception as exc:  # said in the plan and an error in `headshot plan`; tests require a number
        note = f"activations not estimated ({type(exc).__name__}: {str(exc)[:200]})"
    sampling = 0
    if frozen != "never" and config.validation_seeds:  # samples: their working memory on top of all weights
        sampling = max(render_activations(folder, family, resolution, dtype, 1).values())
    options = {
        "quantize_base": config.quantize_base,
        "gradient_checkpointing": config.gradient_checkpointing,
        "use_8bit_adam": config.use_8bit_adam,
        "batch_size": config.batch_size,
        "resolution": resolution,
        "dtype": str(dtype).replace("torch.", ""),
    }
    return mp.MemoryEstimate(
        device=device,
        weights=weights,
        denoiser=family.denoiser,
        lora_parameters=lora,
        lora_state=lora * (4 + 4 + moments),
        activations=activations,
        loading=loading,
        working=working,
        sampling=sampling,
        note=note,
        options=options,
        frozen=tuple(name for name in (*family.text_encoder_names, "vae") if name in weights),
        frozen_loaded=frozen,
    )


def render_activations(folder: Path, family, resolution: int, dtype, batch: int) -> dict[str, int]:
    """Working memory of one denoiser call (a negative-prompt family runs the prompt and the
    negative as one batch) and of decoding the latents, traced on the meta device."""
    import torch

    from headshot.training.finetune_config import FinetuneConfig

    comps = mp.components(folder)
    config = FinetuneConfig(base_model="plan", batch_size=batch, prior_preservation=family.negative_prompts)
    latents, prompts, time_ids = mp.training_inputs(folder, comps, family, config, resolution, dtype)
    timesteps = torch.full((latents.shape[0],), 0.5, device="meta")
    denoiser = mp.meta_model(folder, family.denoiser, *comps[family.denoiser], dtype=dtype)
    call = mp.peak_live_bytes(lambda: family.predict(denoiser, latents, timesteps, prompts, time_ids, 1.0))
    vae = mp.meta_model(folder, "vae", *comps["vae"], dtype=dtype)
    one = latents[:batch]
    decode = mp.peak_live_bytes(lambda: vae.decode(family.vae_latents(vae, one)).sample)
    return {"denoiser_call": call, "vae_decode": decode}


def meta_denoiser(folder: Path, comps: dict, family, config, dtype):
    """The frozen denoiser on the meta device with the run's LoRA, in the run's dtype, its frozen
    linear layers running as the quantization backend runs them."""
    import torch

    from headshot.full_size import no_initialisation
    from headshot.quantize import BACKENDS

    model = mp.meta_model(folder, family.denoiser, *comps[family.denoiser])
    model.requires_grad_(False)
    with torch.device("meta"), no_initialisation():
        add_denoiser_lora(family, model, config)
    backend = BACKENDS.get(config.quantize_base)
    if backend is not None and backend.saves_dequantized:
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and "lora_" not in name:
                module.forward = _dequantizing_forward(module)
    # autocast computes the float32 LoRA layers in the base dtype too
    return model if dtype == torch.float32 else torch.nn.Module.to(model, dtype)


def trace_training(folder: Path, comps: dict, family, config, resolution: int, dtype, denoiser) -> int:
    """Activation bytes of one training step's forward of the meta `denoiser`: the same function
    for every family, on inputs in the family's training layout."""
    import torch

    noisy, prompts, time_ids = mp.training_inputs(folder, comps, family, config, resolution, dtype)
    timesteps = torch.full((noisy.shape[0],), 0.5, device="meta")

    def run(model):
        family.predict(model, noisy, timesteps, prompts, time_ids, config.training_guidance)

    return mp.trace_activations(lambda: denoiser, run, config.gradient_checkpointing)


def _dequantizing_forward(linear):
    """A frozen linear as torchao's weight-only layers run: the weight is dequantized into a
    fresh tensor first, which autograd then saves (a tensor, not the parameter)."""
    import torch.nn.functional as functional

    def forward(x):
        return functional.linear(x, linear.weight * 1, linear.bias)

    return forward


def alternatives(
    folder, family, config, resolution, device, dtype, free: int, frozen: str = "training"
) -> list[str]:
    """Option changes (one at a time, then together) whose estimate fits in `free` bytes."""
    from headshot.quantize import BACKENDS

    changes = []
    for option in ("int8", "nf4"):
        if config.quantize_base == "none" and (device == "cuda" or not BACKENDS[option].cuda_only):
            changes.append({"quantize_base": option})
    if not config.gradient_checkpointing:
        changes.append({"gradient_checkpointing": True})
    if not config.use_8bit_adam and device == "cuda":
        changes.append({"use_8bit_adam": True})
    if config.batch_size > 1:
        changes.append({"batch_size": 1})
    if len(changes) > 1:
        combined = {}
        for change in changes:
            if "quantize_base" not in change or "quantize_base" not in combined:
                combined.update(change)
        changes.append(combined)
    fitting = []
    for change in changes:
        estimate = estimate_finetune(
            folder, family, config.model_copy(update=change), resolution, device, dtype, frozen=frozen
        )
        if estimate.peak <= free:
            words = " + ".join(f"{key}: {str(value).lower()}" for key, value in change.items())
            fitting.append(f"{words} ({mp.gib(estimate.peak)})")
    return fitting


def check_fits(estimate, free: int, folder, family, config, resolution, dtype) -> None:
    """Stop with the options that would fit when the estimate exceeds the free memory."""
    if estimate.peak <= free or not config.memory_check:
        return
    fitting = alternatives(
        folder, family, config, resolution, estimate.device, dtype, free, estimate.frozen_loaded
    )
    hint = ("; options that would fit: " + "; ".join(fitting)) if fitting else "; no single option fits"
    raise HeadshotError(
        f"{folder}: training needs an estimated {mp.gib(estimate.peak)} on {estimate.device}, "
        f"{mp.gib(free)} is free{hint} (memory_check: false to try anyway)"
    )


def plan_finetune(
    spec, source: Path, family_name, config, resolution: int, device: str, say, frozen: str = "training"
) -> mp.MemoryEstimate | None:
    """Print the estimate for the model's files at `source` (loading.model_source: a hub id's
    folder is downloaded first) and stop if it does not fit (before loading).

    `frozen` says when the text encoders and the VAE will be in memory (estimate_finetune)."""
    from headshot.families import get_family
    from headshot.training.accelerator import planned_dtype

    folder = Path(source) if (Path(source) / "model_index.json").is_file() else None
    if family_name is None or folder is None:
        say("memory plan: skipped (a single-file checkpoint: its parts are known only once it is loaded)")
        return None
    family, dtype = get_family(family_name), planned_dtype(config)
    estimate = estimate_finetune(folder, family, config, resolution, device, dtype, spec.variant, frozen)
    free = mp.free_memory(device)
    if config.memory_limit_gib is not None:
        free = min(free, int(config.memory_limit_gib * mp.GIB))
    say(f"memory plan: estimated peak {estimate.describe()}; {mp.gib(free)} free")
    if estimate.note:
        say(f"memory plan: {estimate.note}")
    check_fits(estimate, free, folder, family, config, resolution, dtype)
    _import_loading_code(family, config.quantize_base)
    return estimate


def _import_loading_code(family, quantize_base: str) -> None:
    """Import what loading will import, so the measured peak is the model's, not the code's."""
    import importlib

    family.pipeline_class  # noqa: B018  (the pipeline module)
    for name in ("peft.tuners.lora", "diffusers.loaders.peft"):
        importlib.import_module(name)
    if quantize_base in ("int8", "fp8"):
        importlib.import_module("torchao.quantization")


def memory_record(estimate: mp.MemoryEstimate | None, measured: int | None, watch) -> dict:
    """training.json's `memory`: the estimate's parts and the measured peak of this run's set-up
    and training (a resumed run: of its own part)."""
    record = estimate.record() if estimate is not None else {"estimated_peak_bytes": None}
    if watch is not None and measured is not None:
        record["measured_peak_bytes"] = measured
        record["measured"] = watch.what
        if estimate is not None and record["measured_peak_bytes"]:
            record["estimate_over_measured"] = round(estimate.peak / record["measured_peak_bytes"], 3)
    return record


class PeakWatch:
    """The peak memory a run adds from now on: CUDA's allocator peak, or the CPU's resident-set peak."""

    def __init__(self, device: str):
        self.device = device
        if device == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            self.what = "CUDA allocator peak (max_memory_allocated) over the start of loading"
        else:
            _warm_up()
            _reset_peak_rss()
            self.baseline = _status_kib("VmRSS") * 1024
            self.what = (
                "peak resident set (VmHWM) over the resident set just before loading (on a CPU it "
                "includes the validation samples' face scoring when validation_steps > 0)"
            )

    def peak(self) -> int:
        if self.device == "cuda":
            import torch

            return int(torch.cuda.max_memory_allocated() - self.baseline)
        return max(0, _status_kib("VmHWM") * 1024 - self.baseline)


def _warm_up() -> None:
    """One tiny training step, so that code loaded on first use (the optimizer's step pulls in
    about 75 MB of torch._dynamo) is not counted as the model's memory."""
    import torch

    layer = torch.nn.Linear(8, 8)
    optimizer = torch.optim.AdamW(layer.parameters())
    x = layer(torch.ones(1, 2, 8))
    torch.nn.functional.scaled_dot_product_attention(x, x, x).sum().backward()
    optimizer.step()


def _reset_peak_rss() -> None:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _status_kib(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux; no reset possible
