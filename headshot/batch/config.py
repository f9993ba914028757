"""The batch file: shared stage settings, per-stage resources and the subjects, validated up front.

Every subject's settings for every stage are the batch's shared block with the subject's own
block merged over it, checked against the stage's own config model before anything starts,
so a typo in the 30th subject is a one-line error naming the file and field, not a failure
an hour in. Relative paths of the batch's own fields (photos, outputs, signing_config) are
relative to the batch file's folder: workers on other machines do not share the driver's
working directory.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from headshot.config import DEFAULT_BASE_MODEL, StrictModel, _deep_merge, describe_validation_error, read_yaml
from headshot.errors import HeadshotError
from headshot.layout import check_safe_name

STAGES = ("prepare", "finetune", "generate", "audit")

# Options the batch itself sets for every stage: giving them in a stage block is an error
# that says where they belong.
_SET_BY_BATCH = {
    "prepare": {"photos": "subjects[].photos", "subject": "subjects[].name", "outputs": "outputs",
                "base_model": "base_model"},
    "finetune": {"base_model": "base_model"},
    "generate": {"base_model": "base_model", "allow_pickle": "allow_pickle",
                 "signing_config": "signing_config"},
    "audit": {"photos": "subjects[].photos", "dataset": "(the subject's dataset)",
              "out": "(the subject's audit/)"},
}  # fmt: skip


class StageResources(StrictModel):
    """What one stage's Ray task holds while it runs."""

    cpus: float = Field(1.0, ge=0, description="CPU cores the stage's task holds")
    gpus: float = Field(
        0.0, ge=0, description="GPUs the stage's task holds; a fraction (0.5) lets two tasks share one GPU"
    )
    memory_gb: float | None = Field(
        None, gt=0, description="memory the task reserves in Ray's bookkeeping (GiB); none by default"
    )
    custom: dict[str, float] = Field(
        default_factory=dict, description="custom Ray resources a node must offer, e.g. {a100: 1}"
    )

    @field_validator("gpus")
    @classmethod
    def _whole_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError("more than one GPU must be a whole number (Ray shares only a single GPU)")
        return value

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory_gb is not None:
            options["memory"] = int(self.memory_gb * 2**30)
        if self.custom:
            options["resources"] = dict(self.custom)
        return options

    def demands(self) -> dict[str, float]:
        """In Ray's resource names, what a node must have."""
        wanted = {"CPU": self.cpus, "GPU": self.gpus, **self.custom}
        if self.memory_gb is not None:
            wanted["memory"] = self.memory_gb * 2**30
        return {name: amount for name, amount in wanted.items() if amount > 0}


class StageResourceSet(StrictModel):
    prepare: StageResources = Field(default_factory=StageResources, description="prepare's task")
    finetune: StageResources = Field(default_factory=StageResources, description="finetune's task")
    generate: StageResources = Field(default_factory=StageResources, description="generate's task")
    audit: StageResources = Field(default_factory=StageResources, description="audit's task")


StageOptions = dict[str, Any]


class SubjectEntry(StrictModel):
    """One person: their photos and, optionally, settings of their own."""

    name: str = Field(description="the subject's folder name under the outputs root")
    photos: Path = Field(description="folder of the subject's photos, on storage every node sees")
    base_model: str | None = Field(None, description="this subject's base model (default: the batch's)")
    prepare: StageOptions = Field(default_factory=dict, description="prepare options over the batch's")
    finetune: StageOptions = Field(default_factory=dict, description="finetune options over the batch's")
    generate: StageOptions = Field(default_factory=dict, description="generate options over the batch's")
    audit: StageOptions = Field(default_factory=dict, description="audit options over the batch's")

    @field_validator("name")
    @classmethod
    def _safe(cls, value: str) -> str:
        try:
            return check_safe_name(value, "subject")
        except HeadshotError as exc:
            raise ValueError(str(exc)) from None


class BatchConfig(StrictModel):
    """The options of a batch file (`headshot batch BATCH.yaml`)."""

    base_model: str = Field(DEFAULT_BASE_MODEL, description="any preset, hub id or folder, for every subject")
    outputs: Path = Field(
        Path("outputs"), description="root of every subject's folders; must be shared by all nodes"
    )
    prepare: StageOptions = Field(default_factory=dict, description="options as in configs/prepare.yaml")
    finetune: StageOptions = Field(default_factory=dict, description="options as in configs/finetune.yaml")
    generate: StageOptions = Field(default_factory=dict, description="options as in configs/generate.yaml")
    audit: StageOptions = Field(default_factory=dict, description="options as in configs/audit.yaml")
    resources: StageResourceSet = Field(
        default_factory=StageResourceSet, description="what each stage's task holds (cpus, gpus, memory_gb)"
    )
    max_retries: int = Field(
        3, ge=0, le=100, description="times Ray reruns a stage whose worker or node died (it resumes)"
    )
    manifest_store: str | None = Field(
        None,
        description="where signed headshots' manifests are stored: a folder, or a PostgreSQL URL "
        "(required on a cluster of several machines); default OUTPUTS/manifest-store",
    )
    signing_config: Path | None = Field(
        None, description="signing YAML (credentials); default: development keys in OUTPUTS/keys"
    )
    allow_pickle: bool = Field(False, description="allow pickle weights (.ckpt/.bin); only files you trust")
    subjects: list[SubjectEntry] = Field(min_length=1, description="the people, each with name and photos")

    @model_validator(mode="after")
    def _unique_names(self) -> BatchConfig:
        seen: set[str] = set()
        for entry in self.subjects:
            if entry.name.casefold() in seen:
                raise ValueError(f"subject '{entry.name}' is listed twice")
            seen.add(entry.name.casefold())
        return self

    def stage_options(self, entry: SubjectEntry, stage: str) -> dict[str, Any]:
        """The batch's options for `stage` with the subject's own merged over them."""
        return _deep_merge(getattr(self, stage), getattr(entry, stage))

    def base_model_of(self, entry: SubjectEntry) -> str:
        return entry.base_model or self.base_model


def stage_key(stage: str, settings: dict[str, Any], upstream: str) -> str:
    """What decides a stage's outputs: its settings and everything upstream of it. A re-run
    skips a stage whose key is the one recorded when it last finished."""
    text = json.dumps(
        {"stage": stage, "settings": settings, "upstream": upstream}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def load_batch(path: Path, outputs: Path | None = None) -> BatchConfig:
    """Read and check a batch file; every subject's stage settings are validated here."""
    path = Path(path)
    if not path.is_file():
        raise HeadshotError(f"{path}: batch file not found")
    data = read_yaml(path)
    if outputs is not None:
        data["outputs"] = str(outputs.absolute())
    try:
        batch = BatchConfig.model_validate(data)
    except ValidationError as exc:
        raise HeadshotError(describe_validation_error(exc, str(path))) from None
    batch = _absolute_paths(batch, path.absolute().parent)
    for stage in STAGES:
        _check_stage(batch, stage, getattr(batch, stage), f"{stage}", path, batch.subjects[0])
    for index, entry in enumerate(batch.subjects):
        for stage in STAGES:
            merged = batch.stage_options(entry, stage)
            _check_stage(batch, stage, merged, f"subjects[{index}].{stage}", path, entry)
    return batch


def _absolute_paths(batch: BatchConfig, base: Path) -> BatchConfig:
    def absolute(value: Path) -> Path:
        value = Path(value).expanduser()
        return value if value.is_absolute() else base / value

    subjects = [entry.model_copy(update={"photos": absolute(entry.photos)}) for entry in batch.subjects]
    update: dict[str, Any] = {"outputs": absolute(batch.outputs), "subjects": subjects}
    if batch.signing_config is not None:
        update["signing_config"] = absolute(batch.signing_config)
    return batch.model_copy(update=update)


def _stage_model(stage: str) -> type:
    if stage == "prepare":
        from headshot.training.intake import PrepareConfig

        return PrepareConfig
    if stage == "finetune":
        from headshot.training.finetune_config import FinetuneConfig

        return FinetuneConfig
    if stage == "generate":
        from headshot.pipelines.generate_config import GenerateConfig

        return GenerateConfig
    from headshot.analysis.audit import AuditConfig

    return AuditConfig


def _check_stage(batch: BatchConfig, stage: str, options: dict, where: str, path: Path, entry) -> None:
    for key, home in _SET_BY_BATCH[stage].items():
        if key in options:
            raise HeadshotError(f"{path}: field '{where}.{key}': set by the batch ({home}), not per stage")
    given = dict(options)
    if stage == "prepare":
        given.update(photos=str(entry.photos), subject=entry.name, outputs=str(batch.outputs))
    try:
        _stage_model(stage).model_validate(given)
    except ValidationError as exc:
        message = describe_validation_error(exc, str(path))
        raise HeadshotError(message.replace("field '", f"field '{where}.")) from None
