"""Which checkpoint is exported: the validated step whose samples look most like the person,
scored leave-one-out, with real photos standing in for samples; and the export from it."""

from __future__ import annotations

import json

import pytest
from finetune_support import copy_dataset, fast_options, make_dataset
from PIL import ImageOps
from safetensors.torch import load_file

from headshot.analysis.likeness import SubjectIdentity
from headshot.dataset_record import read_dataset
from headshot.samples import astronaut, grace_hopper
from headshot.training import selection, validation
from headshot.training.finetune_config import FinetuneConfig


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("outputs"), "sd15")


@pytest.fixture(scope="module")
def identity(dataset):
    return SubjectIdentity.from_dataset(read_dataset(dataset))


def _samples(step: int, images, identity) -> list[validation.SampleScore]:
    scores = []
    for seed, image in enumerate(images):
        score = validation.score_sample(image, identity)
        score.step, score.seed, score.image = step, seed, f"step-{step}_seed-{seed}.png"
        scores.append(score)
    return scores


def test_the_step_whose_samples_look_most_like_the_subject_is_chosen(identity):
    from PIL import Image

    hopper = grace_hopper()
    history = (
        _samples(100, [astronaut(), astronaut().rotate(4)], identity)  # another person
        + _samples(200, [ImageOps.mirror(hopper), hopper.rotate(6)], identity)  # the subject
        + _samples(300, [Image.new("RGB", (64, 64), (90, 90, 90))] * 2, identity)  # no face
    )
    chosen = selection.choose(history, "best_likeness", last_step=300)
    assert chosen.step == 200 and "step 200 scored best" in chosen.reason
    per_step = {s.step: s for s in chosen.per_step}
    assert per_step[200].likeness_loo < per_step[100].likeness_loo and per_step[300].likeness_loo is None
    assert per_step[300].faces == 0 and per_step[200].faces == 2
    assert selection.choose(history, "last", last_step=300).step == 300
    faceless = selection.choose(history[-2:], "best_likeness", last_step=300)
    assert faceless.step == 300 and "no validation sample showed a face" in faceless.reason


def test_a_copy_of_a_training_photo_gets_no_credit_for_being_a_copy(identity):
    """Leave-one-out: a sample equal to training photo k is judged against the other photos,
    exactly as photo k itself would be, not against a centroid it helped to make."""
    photos = identity.embeddings
    for k in range(len(photos)):
        others = SubjectIdentity.from_embeddings([e for i, e in enumerate(photos) if i != k])
        loo = selection.leave_one_out_relative(identity, photos[k])
        assert loo == pytest.approx(others.score(photos[k]).relative)
        assert loo > identity.score(photos[k]).relative  # the plain score flatters the copy


def test_finetune_exports_the_chosen_step_and_records_every_score(dataset, tiny_sd15, tmp_path, monkeypatch):
    """The tiny model's samples show no face, so the face analysis is fed step-dependent
    scores here; what is tested is that export takes the chosen step's tensors, both files."""
    from headshot.training.finetune import finetune_dataset

    real_score = validation.score_sample
    calls = []

    def scored_by_step(image, identity):
        calls.append(1)
        score = real_score(image, identity)
        score.face, score.likeness_loo = True, 0.4 if len(calls) <= 1 else 0.9  # step 1 scores best
        return score

    monkeypatch.setattr(validation, "score_sample", scored_by_step)
    options = fast_options(
        steps=3, validation_steps=1, prior_preservation=False, cache_dir=tmp_path / "cache"
    )
    chosen_run = copy_dataset(dataset, tmp_path / "chosen")
    record = finetune_dataset(chosen_run, FinetuneConfig(base_model=str(tiny_sd15), **options))
    assert record.steps == 3 and record.selection["chosen_step"] == 1
    assert [s["step"] for s in record.selection["per_checkpoint"]] == [1, 2, 3]
    saved = json.loads((chosen_run.parent / "lora" / "training.json").read_text())
    assert saved["selection"]["select"] == "best_likeness" and saved["selection"]["chosen_step"] == 1

    # The exported files equal those of a run that stopped at step 1 (same seed, constant lr).
    monkeypatch.setattr(validation, "score_sample", real_score)
    one_step = copy_dataset(dataset, tmp_path / "one-step")
    options.update(steps=1, validation_steps=0, select="last")
    finetune_dataset(one_step, FinetuneConfig(base_model=str(tiny_sd15), **options))
    for name in (record.lora_file, record.kohya_file):
        exported = load_file(str(chosen_run.parent / "lora" / name))
        reference = load_file(str(one_step.parent / "lora" / name))
        assert exported.keys() == reference.keys()
        assert all((exported[key] == reference[key]).all() for key in exported), name
