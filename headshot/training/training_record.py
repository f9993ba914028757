"""The schema of `lora/training.json`: the contract between `finetune` and `generate`.

`finetune` writes it next to the LoRA; `generate` reads the identifier, class noun and
base model from it, so renders always use the words the LoRA was trained on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from headshot.config import (
    Count,
    Finite,
    Resolution,
    Sha256,
    StrictModel,
    Text,
    Word,
    read_json_record,
)
from headshot.errors import HeadshotError
from headshot.families import FamilyName
from headshot.layout import LORA_FILE, SafeName

TRAINING_FORMAT = 1


class TrainingRecord(StrictModel):
    format: int = Field(TRAINING_FORMAT, ge=1, le=TRAINING_FORMAT)
    subject: SafeName
    identifier: Word  # the rare token, e.g. "sks"
    class_noun: Word  # e.g. "woman", "man", "person"
    instance_prompt: Text  # e.g. "a photo of sks person"
    class_prompt: Text  # e.g. "a photo of person"
    base_model: Text  # what --base-model named: preset, hub id or local path
    base_model_sha256: Sha256
    family: FamilyName  # a registered family (headshot.families)
    resolution: Resolution
    # Text tokens the prompts were padded to in training (FLUX's max_sequence_length); validation
    # samples and generate render at it. None: fixed by the tokenizers (SD), or a record from
    # before the field (rendered at the pipeline's own 512, as such LoRAs were validated).
    max_sequence_length: int | None = Field(None, ge=1, le=4096)
    lora_file: Text = LORA_FILE
    lora_sha256: Sha256
    kohya_file: Text | None = None
    dataset_sha256: Sha256
    train_text_encoder: bool = False
    rank: int | None = Field(None, gt=0, le=1024)
    lora_alpha: float | None = Field(None, gt=0, allow_inf_nan=False)
    steps: Count
    final_loss: Finite | None = None
    mean_loss_last_10pct: Finite | None = None  # final_loss of one step is noisy; this is not
    wall_time_s: float | None = Field(None, ge=0, allow_inf_nan=False)
    num_instance_images: Count | None = None
    num_class_images: Count | None = None
    num_processes: int = Field(1, ge=1, le=100_000)  # data-parallel processes (accelerate launch)
    validation: dict = Field(default_factory=dict)  # last validation: faces found, likeness
    # The base the LoRA was trained against: its quantization and compute dtype ("int8+bf16");
    # generate renders at it by default and warns when told otherwise. None: before the option.
    quantize_base: str = "none"
    base_precision: str | None = None
    memory: dict = Field(default_factory=dict)  # the memory plan's estimate and the measured peak
    # Which step's LoRA was exported and why, with every validated step's score (selection.py).
    selection: dict = Field(default_factory=dict)
    config: dict = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


def tail_mean(losses: list[float]) -> float | None:
    """Mean loss over the last 10% of steps (the final step's loss alone is noisy)."""
    if not losses:
        return None
    tail = losses[-max(1, len(losses) // 10) :]
    return sum(tail) / len(tail)


def write_training_record(
    lora_folder: Path, record: TrainingRecord, subject_root: Path | None = None
) -> Path:
    """Written with portable paths only: the base model relative to the subject folder (or by
    name), no absolute path anywhere (records.portable_record)."""
    from headshot.records import atomic_write_json, portable_record, recorded_model

    subject_root = Path(subject_root or Path(lora_folder).resolve().parent)
    data = portable_record(record.model_dump(mode="json"), subject_root)
    data["base_model"] = recorded_model(record.base_model, subject_root)
    path = Path(lora_folder) / "training.json"
    atomic_write_json(path, data)
    return path


def read_training_record(lora_folder: Path) -> TrainingRecord:
    path = Path(lora_folder) / "training.json"
    if not path.is_file():
        raise HeadshotError(
            f"{lora_folder}: no training.json; is this a folder written by `headshot finetune`?"
        )
    from headshot.records import check_inside, model_from_record
    from headshot.storage import StagedFiles

    StagedFiles(lora_folder).recover()  # a run killed while saving LoRA + record: finish it
    record = read_json_record(path, TrainingRecord)
    check_inside(path, "lora_file", record.lora_file)
    lora = Path(lora_folder) / record.lora_file
    if not lora.is_file():
        raise HeadshotError(f"{path}: the LoRA file {record.lora_file} it names is missing")
    check_lora_file(lora)
    record.base_model = model_from_record(record.base_model, Path(lora_folder).resolve().parent)
    return record


def check_lora_file(path: Path) -> None:
    """A LoRA file must be a readable safetensors file holding at least one tensor."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            count = len(list(handle.keys()))
    except Exception as exc:  # safetensors raises its own error types for damaged headers
        reason = " ".join(str(exc).split())[:160]
        raise HeadshotError(f"{path}: not a readable safetensors LoRA file ({reason})") from None
    if count == 0:
        raise HeadshotError(f"{path}: the LoRA file holds no tensors (an empty export?); train again")
