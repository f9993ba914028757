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

from headshot.errors import HeadshotError
from headshot.layout import SubjectLayout
from headshot.pipelines.loading import LoadedModel, load_base_model, resolve_base_model
from headshot.training.training_record import TrainingRecord, read_training_record

FINAL = "final"


@dataclass
class LoraCheckpoint:
    label: str  # the folder name, e.g. checkpoint-500; "final" for the finished LoRA
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
    name = base_model or (record.base_model if record else "sdxl")
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
        for label, step, file in _checkpoint_files(Path(lora_folder), record.lora_file, model):
            _load_lora(model, label, step, file)
    model.use_lora(FINAL, 1.0)
    return model


def _checkpoint_files(lora_folder: Path, lora_file: str, model: StudyModel):
    """lora/checkpoints/<name>/<lora file>, with the training step read from the name's digits."""
    folder = lora_folder / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in sorted(folder.iterdir()):
        digits = re.findall(r"\d+", child.name)
        file = child / lora_file
        if not child.is_dir() or not digits or not file.is_file():
            # Optimizer-only states (no LoRA weights) cannot be rendered; say so in study.json.
            model.skipped_checkpoints.append(child.name)
            continue
        found.append((child.name, int(digits[-1]), file))
    return sorted(found, key=lambda item: item[1])


def _load_lora(model: StudyModel, label: str, step: int, file: Path) -> None:
    adapter = re.sub(r"[^A-Za-z0-9_]", "_", f"study_{label}")
    try:
        with warnings.catch_warnings():
            # peft warns on every adapter after the first; several adapters is the point here.
            warnings.filterwarnings("ignore", message="Already found a `peft_config`")
            model.pipeline.load_lora_weights(str(file.parent), weight_name=file.name, adapter_name=adapter)
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
