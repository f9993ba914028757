"""The model a study looks at: a base model, optionally with the subject's LoRA and its checkpoints.

Every LoRA (the final one and each training checkpoint) is loaded once as its own named
adapter; `use_lora` switches between them and sets the LoRA scale, so a sweep never reloads
the base model.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from headshot.config import DEFAULT_BASE_MODEL
from headshot.errors import HeadshotError
from headshot.layout import SubjectLayout
from headshot.models.loading import LoadedModel, load_base_model
from headshot.models.model_spec import resolve_base_model
from headshot.training.training_record import TrainingRecord, read_training_record

FINAL = "final"


@dataclass
class LoraCheckpoint:
    label: str  # the checkpoint folder name, e.g. step-000500; "final" for the finished LoRA
    step: int  # training step (the final LoRA: training.json's steps)
    file: Path
    adapter: str  # the adapter name inside the pipeline


@dataclass
class StudyModel:
    loaded: LoadedModel
    device: str
    record: TrainingRecord | None = None
    lora_folder: Path | None = None
    loras: dict[str, LoraCheckpoint] = field(default_factory=dict)  # label -> LoRA
    skipped_checkpoints: list[str] = field(default_factory=list)

    @property
    def pipeline(self):
        return self.loaded.pipeline

    @property
    def family(self) -> str:
        return self.loaded.family.name

    @property
    def has_lora(self) -> bool:
        return bool(self.loras)

    @property
    def prompt_length(self) -> int | None:
        """The LoRA's training prompt length (FLUX), as generate renders it; None: the pipeline's."""
        return self.record.max_sequence_length if self.record is not None else None

    @property
    def checkpoints(self) -> list[LoraCheckpoint]:
        """Training checkpoints and the final LoRA, in training order."""
        return sorted(self.loras.values(), key=lambda lora: (lora.step, lora.label == FINAL))

    def use_lora(self, label: str = FINAL, scale: float = 1.0) -> None:
        """Activate one LoRA at `scale` (0 turns it off); a no-op for a base-model study."""
        if not self.loras:
            return
        self.pipeline.set_adapters([self.loras[label].adapter], adapter_weights=[scale])


def _device_and_dtype(device: str | None, dtype: str):
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def load_study_model(
    lora_folder: Path | None,
    base_model: str | None,
    *,
    device: str | None = None,
    dtype: str = "auto",
    allow_pickle: bool = False,
    with_checkpoints: bool = True,
) -> StudyModel:
    """Load the base model (the LoRA's own unless `base_model` names another) and its LoRAs."""
    record = read_training_record(lora_folder) if lora_folder is not None else None
    name = base_model or (record.base_model if record else DEFAULT_BASE_MODEL)
    device, torch_dtype = _device_and_dtype(device, dtype)
    loaded = load_base_model(
        resolve_base_model(name), dtype=torch_dtype, device=device, allow_pickle=allow_pickle
    )
    model = StudyModel(loaded=loaded, device=device, record=record, lora_folder=lora_folder)
    if record is None:
        return model
    if record.family != loaded.family.name:
        raise HeadshotError(
            f"{lora_folder}: this LoRA was trained on a {record.family} model, but the base model "
            f"'{name}' is {loaded.family.name}; pass the LoRA's own base model with -m"
        )
    _load_lora(model, FINAL, record.steps, Path(lora_folder) / record.lora_file)
    if with_checkpoints:
        for label, step, folder in _checkpoint_folders(Path(lora_folder), record, model):
            _load_lora(model, label, step, folder / "lora.safetensors", _checkpoint_weights(folder, record))
    model.use_lora(FINAL, 1.0)
    return model


def _checkpoint_folders(lora_folder: Path, record: TrainingRecord, model: StudyModel):
    """Finetune's training checkpoints, `lora/checkpoints/step-NNNNNN/`, in step order.

    The one at the final step holds the final LoRA's weights and is studied as "final".
    A folder that is not a complete checkpoint (no state.json or lora.safetensors), or a
    record without the LoRA scale (rank, alpha), cannot be rendered: listed as skipped.
    """
    from headshot.training.checkpoints import checkpoint_step

    folder = lora_folder / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):  # a checkpoint still being written
            continue
        step = checkpoint_step(child)
        complete = (child / "state.json").is_file() and (child / "lora.safetensors").is_file()
        if step is None or not complete or record.rank is None or record.lora_alpha is None:
            model.skipped_checkpoints.append(child.name)
        elif step != record.steps:
            found.append((child.name, step, child))
    return sorted(found, key=lambda item: item[1])


def _checkpoint_weights(folder: Path, record: TrainingRecord) -> dict:
    from headshot.training.checkpoints import checkpoint_lora_layers, read_checkpoint

    return checkpoint_lora_layers(read_checkpoint(folder).lora, record.lora_alpha / record.rank)


def _load_lora(model: StudyModel, label: str, step: int, file: Path, weights: dict | None = None) -> None:
    adapter = re.sub(r"[^A-Za-z0-9_]", "_", f"study_{label}")
    source, options = (weights, {}) if weights is not None else (str(file.parent), {"weight_name": file.name})
    try:
        with warnings.catch_warnings():
            # peft warns on every adapter after the first; several adapters is the point here.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            model.pipeline.load_lora_weights(source, adapter_name=adapter, **options)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise HeadshotError(f"{file}: could not load this LoRA into the base model: {exc}") from None
    model.loras[label] = LoraCheckpoint(label=label, step=step, file=file, adapter=adapter)


def study_folder(out: Path | None, lora_folder: Path | None, subject: str | None, outputs: Path) -> Path:
    """Where the study is written: --out, else OUTPUTS/<subject>/audit/study."""
    if out is not None:
        return Path(out)
    if lora_folder is not None:
        return SubjectLayout.of_stage_folder(lora_folder).audit / "study"
    if subject is not None:
        return SubjectLayout.for_subject(outputs, subject).audit / "study"
    raise HeadshotError(
        "study: say where to write it: give a LoRA folder, --subject NAME (OUTPUTS/NAME/audit/study) "
        "or --out DIR"
    )
