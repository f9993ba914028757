"""The training resolution of a base model, read from its configs without loading weights.

A local diffusers folder says it exactly, read by its family (SD: the UNet's latent
`sample_size` times the VAE's downscale factor; FLUX: the VAE's `sample_size`); tiny
test models come out at 64. Presets and hub ids use the family's native size (SDXL and
FLUX 1024, SD1.5 512), or the exact one when the model is already in the local cache.
"""

from __future__ import annotations

from pathlib import Path

from headshot.errors import HeadshotError
from headshot.families import family_names, get_family
from headshot.models.loading import folder_family, single_file_family
from headshot.models.model_spec import BaseModelSpec, is_hub_id, resolve_base_model

TINY_RESOLUTION = 64


def native_resolution(family: str) -> int:
    return get_family(family).native_resolution


def training_size(base_model: str, family: str | None = None) -> tuple[str, int]:
    """(family, resolution) of `base_model`; `family` overrides what the model says."""
    spec = resolve_base_model(base_model)
    source = Path(spec.source).expanduser()
    if source.is_dir():
        return _from_folder(spec, source, family)
    if source.is_file():
        found = family or single_file_family(spec, source)
        return found, native_resolution(found)
    if spec.tiny:
        return family or spec.family or family_names()[0], TINY_RESOLUTION
    if is_hub_id(spec.source):
        cached = _cached_hub_folder(spec)
        if cached is not None:
            return _from_folder(spec, cached, family)
    found = family or spec.family
    if found is None:
        raise HeadshotError(
            f"base model '{base_model}': cannot tell which model family it is without downloading "
            f"it; set 'family' ({', '.join(family_names())}) or 'resolution' in the prepare config"
        )
    return found, native_resolution(found)


def _from_folder(spec: BaseModelSpec, folder: Path, family: str | None) -> tuple[str, int]:
    found = family or folder_family(spec, folder)
    # Configs unreadable: the family's native size.
    return found, get_family(found).resolution_from_folder(folder) or native_resolution(found)


def _cached_hub_folder(spec: BaseModelSpec) -> Path | None:
    """The model's folder in the local Hugging Face cache, if its configs are there (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - diffusers depends on it
        return None
    found = try_to_load_from_cache(spec.source, "model_index.json", revision=spec.revision)
    if isinstance(found, str):
        return Path(found).parent
    return None
