"""The training resolution of a base model, read from its configs without loading weights.

A local diffusers folder says it exactly: the UNet's latent `sample_size` times the
VAE's downscale factor (2 ** (number of VAE blocks - 1)); tiny test models come out
at 64. Presets and hub ids use the family's native size (SDXL 1024, SD1.5 512),
or the exact one when the model is already in the local Hugging Face cache.
"""

from __future__ import annotations

from pathlib import Path

from headshot.bounded_io import read_json
from headshot.errors import HeadshotError
from headshot.pipelines.families import FamilyName
from headshot.pipelines.loading import (
    BaseModelSpec,
    folder_family,
    is_hub_id,
    resolve_base_model,
    single_file_family,
)

FAMILY_RESOLUTION: dict[str, int] = {"sd15": 512, "sdxl": 1024}
TINY_RESOLUTION = 64


def training_size(base_model: str, family: FamilyName | None = None) -> tuple[FamilyName, int]:
    """(family, resolution) of `base_model`; `family` overrides what the model says."""
    spec = resolve_base_model(base_model)
    source = Path(spec.source).expanduser()
    if source.is_dir():
        return _from_folder(spec, source, family)
    if source.is_file():
        found = family or single_file_family(spec, source)
        return found, FAMILY_RESOLUTION[found]
    if spec.tiny:
        return family or spec.family or "sd15", TINY_RESOLUTION
    if is_hub_id(spec.source):
        cached = _cached_hub_folder(spec)
        if cached is not None:
            return _from_folder(spec, cached, family)
    found = family or spec.family
    if found is None:
        raise HeadshotError(
            f"base model '{base_model}': cannot tell whether it is an SD1.5 or SDXL model without "
            "downloading it; set 'family' (sd15 or sdxl) or 'resolution' in the prepare config"
        )
    return found, FAMILY_RESOLUTION[found]


def _from_folder(spec: BaseModelSpec, folder: Path, family: FamilyName | None) -> tuple[FamilyName, int]:
    found = family or folder_family(spec, folder)
    try:
        unet = read_json(folder / "unet" / "config.json")
        vae = read_json(folder / "vae" / "config.json")
        factor = 2 ** (len(vae["block_out_channels"]) - 1)
        return found, int(unet["sample_size"]) * factor
    except (HeadshotError, OSError, ValueError, KeyError, TypeError):
        return found, FAMILY_RESOLUTION[found]  # configs unreadable: the family's native size


def _cached_hub_folder(spec: BaseModelSpec) -> Path | None:
    """The model's folder in the local Hugging Face cache, if its configs are there (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - diffusers depends on it
        return None
    found = try_to_load_from_cache(spec.source, "unet/config.json", revision=spec.revision)
    if isinstance(found, str):
        return Path(found).parent.parent
    return None
