"""What a user's `--base-model` names: a preset, a preset file, a hub id, a local folder or a
single file, and whether it can be found here, before anything is loaded.

Kept apart from loading.py so that the checks every stage makes first (the run's preflight,
the hub's answer in hub_access.py, the memory plan) read the spec without the loader.
"""

from __future__ import annotations

import os
from pathlib import Path

from headshot.config import StrictModel, configs_root, read_yaml, validate
from headshot.errors import HeadshotError
from headshot.families import FamilyName, family_names

PICKLE_SUFFIXES = {".ckpt", ".bin", ".pt", ".pth", ".pkl"}


class BaseModelSpec(StrictModel):
    """Where a base model lives and which family it is (see configs/models/*.yaml)."""

    source: str
    family: FamilyName | None = None
    revision: str | None = None
    variant: str | None = None
    # fp16-safe VAE to swap in when running in float16 (SDXL's own VAE overflows).
    fp16_vae: str | None = None
    # For a single-file checkpoint: a diffusers folder or hub id holding the component
    # configs (needed offline, where diffusers cannot fetch them).
    single_file_config: str | None = None
    # Marks the random-weight test models, so errors can say how to build them.
    tiny: bool = False
    preset: str | None = None


def preset_names() -> list[str]:
    return sorted(path.stem for path in (configs_root() / "models").glob("*.yaml"))


def resolve_base_model(value: str) -> BaseModelSpec:
    """A preset name (`sdxl`), a preset YAML file, or a hub id / local path."""
    preset_file = configs_root() / "models" / f"{value}.yaml"
    if "/" not in value and preset_file.is_file():
        data = read_yaml(preset_file)
        return validate(BaseModelSpec, {**data, "preset": value}, str(preset_file))
    if value.endswith((".yaml", ".yml")):
        return validate(BaseModelSpec, read_yaml(Path(value)), value)
    return BaseModelSpec(source=value)


def is_hub_id(source: str) -> bool:
    """`owner/name`, as the Hugging Face hub spells repositories; anything else is a path."""
    parts = source.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not source.startswith((".", "~"))
        and Path(source).suffix.lower() not in PICKLE_SUFFIXES | {".safetensors"}
    )


def missing_model_error(spec: BaseModelSpec, where: str) -> HeadshotError:
    hint = (
        "Point --base-model at a local diffusers folder or a single .safetensors file "
        "(or a preset name: " + ", ".join(preset_names()) + ")."
    )
    family = spec.family or family_names()[0]
    if spec.tiny:
        hint = f"Build it first: headshot tiny-model --family {family} --out {spec.source}"
    else:
        hint += f" To try the pipeline without weights: headshot tiny-model --family {family} --out DIR"
    name = spec.preset or spec.source
    return HeadshotError(f"base model '{name}' not found: {where}\n{hint}")


def check_base_model(spec: BaseModelSpec, *, allow_pickle: bool = False) -> Path | None:
    """Cheap checks before any work: the local path exists and is not a refused pickle.

    Returns the local path, or None for a hub id (checked when it is loaded).
    """
    source = os.path.expanduser(spec.source)
    path = Path(source)
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise HeadshotError(
            f"{source}: refusing a pickle checkpoint ({path.suffix}); unpickling can run "
            "arbitrary code. Convert it to .safetensors, or pass --allow-pickle if you "
            "trust where it came from."
        )
    if path.exists():
        return path
    if spec.tiny or not is_hub_id(source):
        raise missing_model_error(spec, f"no file or folder at {path.resolve()}")
    return None
