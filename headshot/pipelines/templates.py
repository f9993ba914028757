"""Scene templates: one YAML file per professional scene, expanded into a render grid.

A template names the scene's prompt parts (framing, wardrobe, background, lighting,
lens), its sampler settings and the variations it allows. Each variation is a list
of values; the grid is their cartesian product times the seeds. Prompts say
`{identifier} {class_noun}` where the subject goes; both come from `training.json`,
so renders always use the words the LoRA was trained on.
"""

from __future__ import annotations

import itertools
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from headshot.config import StrictModel, Text, configs_root, read_yaml, validate
from headshot.errors import HeadshotError
from headshot.families import FamilyName
from headshot.layout import check_safe_name

# Sampler names a template may use, and the diffusers scheduler class each one means.
SAMPLERS: dict[str, str] = {
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
    "ddim": "DDIMScheduler",
    "pndm": "PNDMScheduler",
    "unipc": "UniPCMultistepScheduler",
    "flow_euler": "FlowMatchEulerDiscreteScheduler",  # flow-matching families (FLUX)
}
SamplerName = Literal["euler", "euler_a", "dpmpp_2m", "ddim", "pndm", "unipc", "flow_euler"]

# A value's slug goes into the render's file name, so it must stay short.
VariationValue = Annotated[str, Field(min_length=1, max_length=64)]
MAX_CANDIDATES = 10_000  # templates x variations x seeds in one run

SUBJECT_FIELDS = ("identifier", "class_noun")
PROMPT_PARTS = ("framing", "wardrobe", "background", "lighting", "lens")


class PromptParts(StrictModel):
    """The pieces of a photographer's brief, joined in this order into the prompt."""

    framing: Text
    wardrobe: Text = ""
    background: Text = ""
    lighting: Text = ""
    lens: Text = ""

    def joined(self) -> str:
        return ", ".join(
            part.strip() for part in (getattr(self, name) for name in PROMPT_PARTS) if part.strip()
        )


class FamilySettings(StrictModel):
    """A template's sampler settings for one model family, where they differ from its defaults."""

    sampler: SamplerName | None = None
    steps: int | None = Field(None, ge=1, le=500)
    guidance: float | None = Field(None, ge=0.0, le=30.0)


class SceneTemplate(StrictModel):
    name: str
    description: Text
    prompt: PromptParts
    negative_prompt: Text = ""
    sampler: SamplerName = "dpmpp_2m"
    steps: int = Field(30, ge=1, le=500)
    guidance: float = Field(5.0, ge=0.0, le=30.0)
    # Square image side in pixels; None means the base model's native resolution.
    size: int | None = Field(None, ge=64, le=4096)
    lora_scale: float = Field(1.0, ge=0.0, le=2.0)
    # At most 8 variations of at most 100 values each; each value becomes part of file names.
    variations: dict[str, Annotated[list[VariationValue], Field(max_length=100)]] = Field(
        default_factory=dict, max_length=8
    )
    # Per family: settings where it renders differently (FLUX: embedded guidance, flow sampler).
    families: dict[FamilyName, FamilySettings] = Field(default_factory=dict)

    def settings_for(self, family) -> tuple[str, int, float]:
        """(sampler, steps, guidance) for a family: the template's, then the family's own
        defaults (`template_defaults`), then the template's `families` entry for it."""
        chosen = {"sampler": self.sampler, "steps": self.steps, "guidance": self.guidance}
        chosen.update(family.template_defaults)
        override = self.families.get(family.name)
        if override is not None:
            chosen.update(override.model_dump(exclude_none=True))
        return chosen["sampler"], chosen["steps"], chosen["guidance"]

    @field_validator("size")
    @classmethod
    def _multiple_of_8(cls, value: int | None) -> int | None:
        if value is not None and value % 8:
            raise ValueError(f"must be a multiple of 8 (the VAE's downscale), got {value}")
        return value

    @field_validator("variations")
    @classmethod
    def _non_empty_lists(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, values in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]*", key):
                raise ValueError(f"variation name '{key}' must be lower-case letters, digits and '_'")
            if not values:
                raise ValueError(f"variation '{key}' lists no values")
        return value


@dataclass(frozen=True)
class LoadedTemplate:
    template: SceneTemplate
    source: Path  # the YAML file, for error messages and the run record

    @property
    def name(self) -> str:
        return self.template.name


@dataclass(frozen=True)
class RenderJob:
    """One candidate to render: a template, one combination of its variations, a seed."""

    template: SceneTemplate
    variant: tuple[tuple[str, str], ...]  # (variation name, value) in the template's order
    seed: int

    @property
    def variant_label(self) -> str:
        return "-".join(_slug(value) for _, value in self.variant)

    @property
    def stem(self) -> str:
        """File name without suffix: `<seed>` or `<variant>-<seed>`."""
        label = self.variant_label
        return f"{label}-{self.seed}" if label else str(self.seed)

    @property
    def key(self) -> str:
        """Unique within a run: `<template>/<stem>`, also the candidate's path under renders/."""
        return f"{self.template.name}/{self.stem}"

    def prompts(self, identifier: str, class_noun: str) -> tuple[str, str]:
        values = {"identifier": identifier, "class_noun": class_noun, **dict(self.variant)}
        return (
            self.template.prompt.joined().format_map(values),
            self.template.negative_prompt.format_map(values),
        )


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")


def shipped_templates_folder() -> Path:
    return configs_root() / "templates"


def shipped_template_names() -> list[str]:
    return sorted(path.stem for path in shipped_templates_folder().glob("*.yaml"))


def resolve_template_path(value: str) -> Path:
    """A shipped template's name (`studio-grey`) or a path to a template YAML file."""
    if value.endswith((".yaml", ".yml")) or "/" in value:
        return Path(value)
    path = shipped_templates_folder() / f"{value}.yaml"
    if not path.is_file():
        raise HeadshotError(
            f"template '{value}': no such shipped template (have: {', '.join(shipped_template_names())}); "
            "or give a path to a .yaml file"
        )
    return path


def load_template(path: Path) -> LoadedTemplate:
    """Read and check one template file; every error names the file and the field."""
    path = Path(path)
    template = validate(SceneTemplate, read_yaml(path), str(path))
    try:
        check_safe_name(template.name, "template name")
    except HeadshotError as exc:
        raise HeadshotError(f"{path}: field 'name': {exc}") from None
    _check_placeholders(template, path)
    _check_variant_labels(template, path)
    return LoadedTemplate(template, path)


def load_templates(values: list[str]) -> list[LoadedTemplate]:
    loaded = [load_template(resolve_template_path(value)) for value in values]
    seen: dict[str, Path] = {}
    for item in loaded:
        if item.name in seen:
            raise HeadshotError(
                f"{item.source}: field 'name': template name '{item.name}' is also used by {seen[item.name]}"
            )
        seen[item.name] = item.source
    return loaded


def _check_placeholders(template: SceneTemplate, path: Path) -> None:
    allowed = set(SUBJECT_FIELDS) | set(template.variations)
    fields = {f"prompt.{name}": getattr(template.prompt, name) for name in PROMPT_PARTS}
    fields["negative_prompt"] = template.negative_prompt
    used: set[str] = set()
    for field, text in fields.items():
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as exc:
            raise HeadshotError(f"{path}: field '{field}': bad placeholder braces ({exc})") from None
        unknown = names - allowed
        if unknown:
            raise HeadshotError(
                f"{path}: field '{field}': unknown placeholder {{{sorted(unknown)[0]}}} "
                f"(allowed: {', '.join('{' + n + '}' for n in sorted(allowed))})"
            )
        used |= names
    for name in SUBJECT_FIELDS:
        if name not in used:
            raise HeadshotError(
                f"{path}: field 'prompt': the prompt must name the subject as "
                "'{identifier} {class_noun}' (missing {" + name + "})"
            )
    for name in template.variations:
        if name not in used:
            raise HeadshotError(
                f"{path}: field 'variations.{name}': no prompt part uses {{{name}}}, so its values "
                "would render identical images"
            )


MAX_STEM = 200  # file names are limited to 255 bytes; room for the seed and suffix


def _check_variant_labels(template: SceneTemplate, path: Path) -> None:
    longest = sum(max(len(_slug(v)) for v in values) + 1 for values in template.variations.values())
    if longest + 11 > MAX_STEM:
        raise HeadshotError(
            f"{path}: field 'variations': the longest combination of values makes a file name of "
            f"{longest + 11} characters, over the limit of {MAX_STEM}; use shorter values"
        )
    for name, values in template.variations.items():
        slugs = [_slug(value) for value in values]
        for value, slug in zip(values, slugs):
            if not slug:
                raise HeadshotError(
                    f"{path}: field 'variations.{name}': value {value!r} has no letters or digits"
                )
        if len(set(slugs)) != len(slugs):
            raise HeadshotError(
                f"{path}: field 'variations.{name}': values repeat (file names would collide)"
            )


def check_templates_for_family(
    templates: list[LoadedTemplate], family, size: int | None, native: int
) -> None:
    """Every template renders on this family: a sampler it has and a size it can make."""
    for item in templates:
        sampler, _, _ = item.template.settings_for(family)
        if sampler not in family.samplers:
            raise HeadshotError(
                f"{item.source}: field 'sampler': {sampler} does not sample {family.name} models "
                f"(use one of {', '.join(family.samplers)}, or set families.{family.name}.sampler)"
            )
        side = size or item.template.size or native
        if side % family.size_multiple:
            where = "the generate option 'size'" if size else "field 'size'"
            raise HeadshotError(
                f"{item.source}: {where}: {side} is not a multiple of {family.size_multiple}, "
                f"which {family.name} models need"
            )


def expand_grid(templates: list[LoadedTemplate], seeds: list[int]) -> list[RenderJob]:
    """Templates x (cartesian product of each template's variations) x seeds, in a fixed order.

    The size is checked before anything is built: a grid of millions is an error, not a
    MemoryError."""
    total = 0
    for item in templates:
        combinations = 1
        for values in item.template.variations.values():
            combinations *= len(values)
        total += combinations * len(seeds)
        if total > MAX_CANDIDATES:
            raise HeadshotError(
                f"{item.source}: field 'variations': the grid reaches {total:,} candidates with "
                f"{len(seeds):,} seeds, over the limit of {MAX_CANDIDATES:,}; use fewer values or seeds"
            )
    jobs = []
    for item in templates:
        names = list(item.template.variations)
        for values in itertools.product(*(item.template.variations[n] for n in names)):
            variant = tuple(zip(names, values))
            jobs.extend(RenderJob(item.template, variant, seed) for seed in seeds)
    return jobs
