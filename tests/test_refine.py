"""The face-detail pass on a real photo with each family's tiny model: pixels change only
inside the feathered face mask, the pass is deterministic per seed, and generate records it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from headshot.families import family_names, get_family
from headshot.pipelines.refine import FaceRefiner, RefineOptions, blend, face_crop
from headshot.samples import grace_hopper

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

CALL = {"prompt": "a photo of sks person", "negative_prompt": "blurry", "num_inference_steps": 4,
        "guidance_scale": 5.0}  # fmt: skip
OPTIONS = RefineOptions(enabled=True, strength=0.6, margin=0.4)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return grace_hopper().resize((256, 320), Image.LANCZOS)


# Every registered family: through diffusers' img2img pipeline, or (FLUX.2 [klein], which has
# none) through the family's own flow-matching img2img on its text-to-image pipeline.
@pytest.fixture(scope="module", params=sorted(family_names()))
def refiner(request, tmp_path_factory):
    from diffusers import DiffusionPipeline

    from headshot.training.tiny_model import save_tiny_model

    folder = save_tiny_model(request.param, tmp_path_factory.mktemp("models") / request.param)
    pipe = DiffusionPipeline.from_pretrained(folder)
    refiner = FaceRefiner(pipe, resolution=64, options=OPTIONS)
    refiner.text_to_image = pipe  # the loaded pipeline generate renders with
    # The prompt arguments as generate passes them: the family's own (no negative prompt on FLUX).
    family = get_family(request.param)
    refiner.call = {**family.render_kwargs([CALL["prompt"]], [CALL["negative_prompt"]], 5.0),
                    "num_inference_steps": CALL["num_inference_steps"]}  # fmt: skip
    return refiner


def test_only_pixels_inside_the_feathered_face_mask_change(refiner, photo):
    crop = face_crop(photo, OPTIONS)
    assert crop is not None
    refined, result = refiner.refine(photo, refiner.call, seed=3)
    assert result == {"applied": True, "crop_box": list(crop.box)}
    _, mask = blend(photo, photo, crop, OPTIONS.feather)
    before, after, inside = np.asarray(photo), np.asarray(refined), np.asarray(mask) > 0
    assert np.array_equal(before[~inside], after[~inside]), "outside the mask: the original, bit for bit"
    changed = np.abs(before.astype(int) - after.astype(int)).max(axis=2) > 8
    assert changed[inside].mean() > 0.3, "the pass re-renders the face"
    left, top, right, bottom = crop.box  # the mask stays within the crop around the face
    assert not inside[:top].any() and not inside[bottom:].any()
    assert not inside[:, :left].any() and not inside[:, right:].any()


def test_the_pass_is_deterministic_per_seed(refiner, photo):
    first, _ = refiner.refine(photo, refiner.call, seed=3)
    again, _ = refiner.refine(photo, refiner.call, seed=3)
    other, _ = refiner.refine(photo, refiner.call, seed=4)
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(other))


def test_the_img2img_pipeline_shares_the_loaded_weights(refiner):
    import torch

    loaded = {name: part for name, part in refiner.text_to_image.components.items()
              if isinstance(part, torch.nn.Module)}  # fmt: skip
    assert {"vae", "text_encoder"} <= set(loaded) and ({"unet", "transformer"} & set(loaded))
    crop_renderer = refiner.img2img.components
    for name, module in loaded.items():  # the very modules, not copies of their weights
        assert crop_renderer.get(name) is module, name


def test_an_image_without_a_face_is_left_alone(refiner):
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8))
    refined, result = refiner.refine(noise, refiner.call, seed=0)
    assert refined is noise and result["applied"] is False


def test_generate_records_the_pass_and_renders_again_when_it_changes(
    run_cli, tiny_sd15, tmp_path, tmp_path_factory
):
    import yaml
    from generate_support import generate_args, subject_copy, write_template

    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")
    template = write_template(tmp_path / "templates", "refine-test", steps=2, variations={"colour": ["navy"]})
    config = tmp_path / "generate.yaml"
    config.write_text(yaml.safe_dump({"refine": {"enabled": True, "strength": 0.4}}))
    assert run_cli(*generate_args(layout, template, seeds=1), "--config", config).code == 0
    (sidecar_file,) = (layout.renders / "refine-test").glob("*.json")
    png_file = sidecar_file.with_suffix(".png")
    sidecar = json.loads(sidecar_file.read_text())
    assert sidecar["refine"]["strength"] == 0.4 and sidecar["refine"]["resolution"] == 64
    assert sidecar["refine_result"]["applied"] is False  # the tiny model draws no face
    png = png_file.stat().st_mtime_ns
    result = run_cli(*generate_args(layout, template, seeds=1))  # refine off now: a new candidate
    assert result.code == 0, result.err
    assert png_file.stat().st_mtime_ns != png
    assert json.loads(sidecar_file.read_text())["refine"] is None
