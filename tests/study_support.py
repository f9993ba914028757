"""A real LoRA folder for study tests, written by `headshot finetune` itself.

A short real run on the tiny model with `checkpoint_steps` set: the study then reads
exactly what finetune writes (`pytorch_lora_weights.safetensors`, `training.json` and
`checkpoints/step-NNNNNN/lora.safetensors`), never a layout made up for the test.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from finetune_support import fast_options, make_dataset

STEPS = 6
CHECKPOINT_STEPS = 3


def finetuned_lora(
    model_dir: Path,
    family: str,
    outputs: Path,
    *,
    subject: str = "ada",
    keep_dataset: bool = True,
    **overrides,
) -> Path:
    """Train a LoRA (6 steps, checkpoints at steps 3 and 6) into OUTPUTS/SUBJECT/lora/.

    The learning rate is high so that a few steps visibly change the images and the
    step-3 checkpoint differs from the final LoRA. `keep_dataset=False` removes the
    dataset afterwards: a LoRA studied on its own, away from the subject's photos.
    """
    from headshot.training.finetune import finetune_dataset
    from headshot.training.finetune_config import FinetuneConfig

    dataset = make_dataset(outputs, family, count=4, subject=subject)
    options = fast_options(
        steps=STEPS, checkpoint_steps=CHECKPOINT_STEPS, checkpoints_keep=3, lr=5e-2,
        prior_preservation=False, class_noun="woman",
    )  # fmt: skip
    options.update(overrides)
    config = FinetuneConfig(base_model=str(model_dir), cache_dir=Path(outputs) / "cache", **options)
    finetune_dataset(dataset, config)
    if not keep_dataset:
        shutil.rmtree(dataset)
    return dataset.parent / "lora"
