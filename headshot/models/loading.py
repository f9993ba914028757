"""Load a base model of any registered family from a preset, hub id, local folder or single file.

This is the only place that turns a user's `--base-model` into a diffusers pipeline.
Real models and the tiny test models go through exactly the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headshot.config import cache_root
from headshot.errors import HeadshotError
from headshot.families import (
    Family,
    FamilyName,
    family_names,
    family_of_checkpoint_keys,
    family_of_folder,
    get_family,
)
from headshot.models.model_spec import PICKLE_SUFFIXES, BaseModelSpec, check_base_model
from headshot.records import sha256_file


@dataclass
class LoadedModel:
    pipeline: object
    family: Family
    spec: BaseModelSpec
    local_path: Path | None
    dtype: object = None  # the frozen weights' torch dtype
    # True: loaded without the text encoders and the VAE (load_base_model's defer_frozen)
    deferred: bool = False

    @property
    def resolution(self) -> int:
        """Native image size, read from the loaded model's configs by its family."""
        if self.deferred:  # the VAE, whose config gives the scale factor, is not loaded yet
            return self.family.resolution_from_folder(Path(self.local_path))
        return self.family.resolution(self.pipeline)

    def full_pipeline(self):
        """The pipeline with every component: a deferred model's text encoders and VAE are loaded
        now (once; the denoiser and the rest are shared, not reloaded)."""
        if self.deferred:
            from headshot.models.deferred import complete_pipeline

            self.pipeline, self.deferred = complete_pipeline(self, self.dtype), False
            _finish_pipeline(self.pipeline, self.spec, self.dtype)
        return self.pipeline

    def fingerprint(self) -> str:
        """SHA-256 over the model's weight and config files (cached by size and mtime)."""
        if self.local_path is None:
            return "unknown"
        return fingerprint_path(self.local_path)


def model_source(spec: BaseModelSpec, *, allow_pickle: bool = False) -> Path:
    """Where the model's files are on this machine: the local path, or a hub id's folder in
    the Hugging Face cache (downloaded now when it is not there yet)."""
    path = check_base_model(spec, allow_pickle=allow_pickle)
    return path if path is not None else download_base_model(spec, allow_pickle)


def load_base_model(
    spec: BaseModelSpec,
    *,
    dtype=None,
    device: str | None = None,
    allow_pickle: bool = False,
    quantize_base: str = "none",
    defer_frozen: bool = False,
) -> LoadedModel:
    """Load the pipeline for `spec`; every failure is a HeadshotError naming the model.

    `quantize_base` (headshot.quantize) loads the family's denoiser quantized, through
    diffusers' PipelineQuantizationConfig; the caller checks the backend first.
    `defer_frozen` leaves a diffusers folder's text encoders and VAE unloaded until
    `LoadedModel.full_pipeline()` (a single-file checkpoint is always loaded whole).
    """
    import torch

    dtype = dtype or torch.float32
    quiet_libraries()
    path = model_source(spec, allow_pickle=allow_pickle)
    if path.is_file() and quantize_base != "none":
        raise HeadshotError(
            f"{path}: option 'quantize_base' ({quantize_base}) needs a diffusers model folder or hub id, "
            "not a single-file checkpoint; convert it (pipeline.save_pretrained) or use quantize_base: none"
        )
    if path.is_file():
        loaded = _load_single_file(spec, path, dtype, allow_pickle)
    else:
        loaded = _load_folder(spec, path, dtype, allow_pickle, quantize_base, defer_frozen)
    loaded.dtype = dtype
    _finish_pipeline(loaded.pipeline, spec, dtype, vae_loaded=not loaded.deferred)
    if device:
        loaded.pipeline.to(device)
    return loaded


def folder_family(spec: BaseModelSpec, folder: Path) -> FamilyName:
    """The family of a diffusers folder: the spec's, else its model_index.json's."""
    if spec.family is not None:
        return spec.family
    found = family_of_folder(folder)
    if found is None:
        classes = ", ".join(get_family(name).pipeline_class_name for name in family_names())
        raise HeadshotError(
            f"{folder}: not a diffusers model folder of a supported family "
            f"(no model_index.json naming one of {classes})"
        )
    return found.name


def single_file_family(spec: BaseModelSpec, path: Path) -> FamilyName:
    """The family of a single-file checkpoint: the spec's, else read from its tensor names
    (the safetensors header only, no weights)."""
    family_name = spec.family
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                keys = set(handle.keys())
        except (SafetensorError, OSError) as exc:
            raise HeadshotError(f"{path}: not a readable .safetensors file: {exc}") from None
        if family_name is None:
            found = family_of_checkpoint_keys(keys)
            family_name = found.name if found else None
    elif path.suffix.lower() not in PICKLE_SUFFIXES:
        raise HeadshotError(f"{path}: expected a .safetensors checkpoint or a diffusers folder")
    if family_name is None:
        raise HeadshotError(
            f"{path}: cannot tell which model family this checkpoint is ({', '.join(family_names())}); "
            "set 'family' in a model YAML file"
        )
    return family_name


def _load_folder(
    spec: BaseModelSpec, folder: Path, dtype, allow_pickle: bool, quantize_base: str = "none", defer=False
) -> LoadedModel:
    from headshot.models.deferred import frozen_component_names
    from headshot.quantize import pipeline_quantization

    family = get_family(folder_family(spec, folder))
    quantization = pipeline_quantization(quantize_base, family.denoiser, dtype)
    # A quantized denoiser is read without mmap: the file's full-precision pages would otherwise
    # stay resident as long as any unquantized tensor (a bias) still points into the mapping.
    extra = {"quantization_config": quantization, "disable_mmap": True} if quantization is not None else {}
    if defer:
        extra.update(frozen_component_names(family))
    has_safetensors = any(folder.rglob("*.safetensors"))
    if not has_safetensors and not allow_pickle:
        raise HeadshotError(
            f"{folder}: has no .safetensors weights (only pickle files); convert them, "
            "or pass --allow-pickle if you trust where they came from."
        )
    try:
        pipeline = family.pipeline_class.from_pretrained(
            folder,
            dtype=dtype,
            variant=spec.variant,
            use_safetensors=not allow_pickle or has_safetensors,
            **family.load_kwargs(),
            **extra,
        )
    except (OSError, ValueError) as exc:
        raise HeadshotError(f"{folder}: could not load as a {family.name} model: {exc}") from None
    if quantization is not None:
        release_freed_heap()  # the full-precision weights just quantized
    return LoadedModel(pipeline, family, spec, folder, dtype=dtype, deferred=defer)


def release_freed_heap() -> None:
    """Give memory freed by Python back to the OS (glibc keeps it otherwise); elsewhere a no-op."""
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _load_single_file(spec: BaseModelSpec, path: Path, dtype, allow_pickle: bool) -> LoadedModel:
    family = get_family(single_file_family(spec, path))
    try:
        pipeline = family.pipeline_class.from_single_file(
            str(path), config=spec.single_file_config, dtype=dtype
        )
    except Exception as exc:  # diffusers raises many types here, all meaning "cannot load"
        raise HeadshotError(
            f"{path}: could not load as a single-file {family.name} checkpoint: {exc}. "
            "Offline, set 'single_file_config' to a local diffusers folder of the same family."
        ) from None
    return LoadedModel(pipeline, family, spec, path)


def download_base_model(spec: BaseModelSpec, allow_pickle: bool = False) -> Path:
    """The local folder of a hub id: the cached copy, else downloaded now (before any loading,
    so the memory plan is made from its files first)."""
    import logging

    from headshot.models.hub_download import fetch_hub_model

    # diffusers logs "Couldn't connect to the Hub ... will try the local cache" before it
    # looks there; the outcome is reported below (or the cached copy loads), so that
    # warning only repeats it.
    hub_logger = logging.getLogger("diffusers.pipelines.pipeline_utils")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        return fetch_hub_model(spec.source, spec.revision, spec.variant, allow_pickle)
    except Exception as exc:  # offline, gated, unknown repo...: told apart for the user
        from headshot.models.hub_access import unavailable_error

        raise unavailable_error(spec, exc) from None
    finally:
        hub_logger.setLevel(level)


def _finish_pipeline(pipeline, spec: BaseModelSpec, dtype, vae_loaded: bool = True) -> None:
    """What every load ends with: no progress bars, and in float16 the fp16-safe VAE the
    model spec names in place of the model's own (SDXL's overflows)."""
    import torch

    if dtype == torch.float16 and spec.fp16_vae and vae_loaded:
        swap_fp16_vae(pipeline, spec.fp16_vae, dtype)
    pipeline.set_progress_bar_config(disable=True)


def swap_fp16_vae(pipeline, source: str, dtype) -> None:
    """Replace the pipeline's VAE with the fp16-safe one the model spec names."""
    from diffusers import AutoencoderKL

    try:
        pipeline.vae = AutoencoderKL.from_pretrained(source, dtype=dtype)
    except Exception as exc:
        raise HeadshotError(
            f"fp16 VAE '{source}' could not be loaded ({exc}); use bf16, or set fp16_vae to a local folder"
        ) from None


def fingerprint_path(path: Path) -> str:
    """SHA-256 over a weight file or a model folder's files, cached by each file's stamp.

    The stamp is size, mtime, inode change time (ctime) and inode. The mtime alone can be
    restored after editing weights in place (`touch -d`); the ctime cannot be set by a user
    and changes on every write, so such an edit is re-hashed. The cost: chmod, a hard
    link or a copy of the folder also change ctime/inode and cost one re-hash (about 1 s
    per GB), never a wrong hash.
    """
    from headshot.bounded_io import read_json_object

    cache_file = cache_root() / "hashes.json"
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = []
    for p in files:
        info = p.stat()
        name = str(p.relative_to(path) if path.is_dir() else p.name)
        stamp.append([name, info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino])
    key = str(path.resolve())
    try:
        cache = read_json_object(cache_file, max_bytes=64 * 1024 * 1024) if cache_file.is_file() else {}
    except HeadshotError:
        cache = {}  # damaged: rebuilt
    entry = cache.get(key)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    if path.is_file():
        digest = sha256_file(path)
    else:
        from headshot.records import sha256_tree

        digest = sha256_tree(files, path)
    cache[key] = {"stamp": stamp, "sha256": digest}
    try:
        from headshot.records import atomic_write_json

        atomic_write_json(cache_file, cache)
    except OSError:
        pass  # a read-only home only costs a re-hash next time
    return digest


def quiet_libraries() -> None:
    """Silence the libraries' own download/loading bars; headshot draws its own progress.

    Their warnings stay on: only known noise is dropped, by message (library_notices).
    """
    import diffusers
    import transformers

    from headshot.models import prompt_notices

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()
    prompt_notices.install()  # a truncated prompt: one short line, once
