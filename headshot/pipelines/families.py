"""The two model families headshot supports, behind one small registry.

A family says which diffusers pipeline class loads it and how to recognise it on
disk. Everything size-dependent (resolution, latent scale) is read from the loaded
model's own config, so tiny test models and full-size ones share every code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from headshot.errors import HeadshotError

FamilyName = Literal["sd15", "sdxl"]


@dataclass(frozen=True)
class ModelFamily:
    name: FamilyName
    pipeline_class_name: str
    description: str
    # Keys that only appear in this family's single-file (original layout) checkpoints.
    single_file_marker: str
    # What kohya's trainer writes as `ss_base_model_version`; AUTOMATIC1111 sorts LoRAs by it.
    kohya_base_model_version: str

    @property
    def pipeline_class(self):
        import diffusers

        return getattr(diffusers, self.pipeline_class_name)


FAMILIES: dict[str, ModelFamily] = {
    "sd15": ModelFamily(
        name="sd15",
        pipeline_class_name="StableDiffusionPipeline",
        description="Stable Diffusion 1.x: one CLIP text encoder, 512x512",
        single_file_marker="cond_stage_model.",
        kohya_base_model_version="sd_v1",
    ),
    "sdxl": ModelFamily(
        name="sdxl",
        pipeline_class_name="StableDiffusionXLPipeline",
        description="Stable Diffusion XL: two text encoders, added time ids, 1024x1024",
        single_file_marker="conditioner.embedders.1.",
        kohya_base_model_version="sdxl_base_v1-0",
    ),
}


def family_of_folder(folder: Path) -> FamilyName | None:
    """Read the family from a diffusers folder's model_index.json, if it has one."""
    index = folder / "model_index.json"
    if not index.is_file():
        return None
    from headshot.bounded_io import read_json_object

    class_name = read_json_object(index, "a JSON object (a diffusers model_index.json)").get(
        "_class_name", ""
    )
    if not isinstance(class_name, str):
        raise HeadshotError(f"{index}: field '_class_name': expected text (a diffusers pipeline class)")
    if "XL" in class_name:
        return "sdxl"
    if class_name.startswith("StableDiffusion"):
        return "sd15"
    return None


def family_of_checkpoint_keys(keys: set[str]) -> FamilyName | None:
    """Recognise a single-file checkpoint's family from its tensor names."""
    for family in ("sdxl", "sd15"):
        marker = FAMILIES[family].single_file_marker
        if any(key.startswith(marker) for key in keys):
            return family
    return None


def family_of_pipeline(pipeline) -> ModelFamily | None:
    """The family whose pipeline class `pipeline` is (or derives from)."""
    for family in FAMILIES.values():
        if isinstance(pipeline, family.pipeline_class):
            return family
    return None
