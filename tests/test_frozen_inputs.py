"""Cached prompt embeddings and latents: a second run loads no text encoder and no VAE, and
trains exactly as the first did.

What a user sees: the first `finetune` of a model encodes the photos and prompts once and
keeps them under the cache folder; the next run on the same model (another rank, another
subject's class images, a resume) starts without loading FLUX's 9 GB T5 or the VAE, and its
LoRA is bit-identical to an uncached run's. Validation samples still render: their first
one loads the encoders then.
"""

from __future__ import annotations

import shutil

import pytest
import torch
from finetune_support import fast_options, make_dataset
from safetensors.torch import load_file

from headshot.training.finetune import finetune_dataset, open_session
from headshot.training.finetune_config import FinetuneConfig

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

FAMILIES = [
    ("sd15", "tiny_sd15"),
    ("sdxl", "tiny_sdxl"),
    ("flux", "tiny_flux"),
    ("flux2-klein", "tiny_flux2_klein"),
]
FLOW = {"flux", "flux2-klein"}


def _config(model, tmp_path, family="sd15", **overrides) -> FinetuneConfig:
    options = fast_options(steps=4, batch_size=2, cache_dir=str(tmp_path / "cache"))
    if family in FLOW:
        options["max_sequence_length"] = 16  # the tiny T5 / Qwen3: short prompts
    return FinetuneConfig(base_model=str(model), **{**options, **overrides})


def _lora(dataset):
    return load_file(dataset.parent / "lora" / "pytorch_lora_weights.safetensors")


def _frozen_modules(session) -> list:
    pipeline, family = session.loaded.pipeline, session.loaded.family
    return [getattr(pipeline, name, None) for name in (*family.text_encoder_names, "vae")]


@pytest.mark.parametrize("family,fixture", FAMILIES)
def test_a_cached_run_loads_no_text_encoder_or_vae_and_equals_an_uncached_run(
    family, fixture, request, tmp_path
):
    model = request.getfixturevalue(fixture)
    first = make_dataset(tmp_path / "first", family, count=3)
    second = shutil.copytree(first, tmp_path / "second" / "ada" / "dataset")
    config = _config(model, tmp_path, family)

    session = open_session(first, config)  # nothing cached yet: encoders and VAE are loaded
    try:
        assert all(module is not None for module in _frozen_modules(session))
        assert not session.loaded.deferred
    finally:
        session.close()
    shutil.rmtree(tmp_path / "cache" / "encoded")  # what that set-up cached: this run computes it again
    uncached = finetune_dataset(first, config)
    assert list((tmp_path / "cache" / "encoded").glob("*.safetensors"))

    session = open_session(second, config)
    try:
        assert all(module is None for module in _frozen_modules(session)), "loaded despite the caches"
        assert session.memory.frozen_loaded == "after"  # only the final validation sample needs them
    finally:
        session.close()
    cached = finetune_dataset(second, config)  # its final validation sample loads them then
    a, b = _lora(first), _lora(second)
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)
    assert cached.final_loss == uncached.final_loss
    samples = sorted((second.parent / "lora" / "samples").glob("*.png"))
    assert samples and [p.read_bytes() for p in samples] == [
        (first.parent / "lora" / "samples" / p.name).read_bytes() for p in samples
    ]


def test_with_no_samples_asked_for_the_estimate_leaves_the_frozen_parts_out(tiny_flux, tmp_path):
    dataset = make_dataset(tmp_path / "a", "flux", count=2)
    config = _config(tiny_flux, tmp_path, "flux", validation_seeds=[])
    first = finetune_dataset(dataset, config)
    again = finetune_dataset(dataset, config)
    assert first.memory["frozen_parts_loaded"] == "training"
    assert again.memory["frozen_parts_loaded"] == "never"
    frozen = sum(first.memory["weights_bytes"][name] for name in ("text_encoder", "text_encoder_2", "vae"))
    assert frozen > 0
    saved = first.memory["estimated_peak_bytes"] - again.memory["estimated_peak_bytes"]
    assert saved == frozen


def test_a_damaged_cache_entry_is_recomputed_not_an_error(tiny_sd15, tmp_path):
    dataset = make_dataset(tmp_path / "a", "sd15", count=2)
    config = _config(tiny_sd15, tmp_path, prior_preservation=False)
    finetune_dataset(dataset, config)
    straight = _lora(dataset)
    entries = sorted((tmp_path / "cache" / "encoded").glob("*.safetensors"))
    assert len(entries) == 2  # the instance latents and the instance prompt
    for entry in entries:
        entry.write_bytes(b"\x00" * 40)  # cut short / overwritten
    session = open_session(dataset, config)
    try:
        assert not session.loaded.deferred  # the damaged entries count as missing
    finally:
        session.close()
    finetune_dataset(dataset, config)
    again = _lora(dataset)
    assert all(torch.equal(straight[key], again[key]) for key in straight)
    assert all(entry.stat().st_size > 40 for entry in entries), "rewritten"


def test_a_changed_prompt_or_photo_misses_the_cache(tiny_sd15, tmp_path):
    dataset = make_dataset(tmp_path / "a", "sd15", count=2)
    config = _config(tiny_sd15, tmp_path, prior_preservation=False)
    finetune_dataset(dataset, config)
    other_prompt = config.model_copy(update={"instance_prompt": "a photo of zwx person"})
    session = open_session(dataset, other_prompt)
    try:
        assert not session.loaded.deferred
    finally:
        session.close()
    fewer = make_dataset(tmp_path / "b", "sd15", count=1)  # other pixels
    session = open_session(fewer, config)
    try:
        assert not session.loaded.deferred
    finally:
        session.close()
