"""Scene templates: the shipped set, schema errors naming file and field, grid expansion."""

from __future__ import annotations

import re

import pytest
import yaml

from headshot.config import configs_root, load_config
from headshot.errors import HeadshotError
from headshot.families import family_names
from headshot.pipelines.generate_config import GenerateConfig
from headshot.pipelines.templates import (
    SAMPLERS,
    expand_grid,
    load_template,
    load_templates,
    resolve_template_path,
    shipped_template_names,
)
from tests.generate_support import write_template

REQUIRED_SCENES = {
    "studio-grey",
    "white-seamless",
    "office-window",
    "outdoor-bokeh",
    "actor-tight",
    "creative-casual",
    "formal-low-key",
    "conference-speaker",
}
# Words that promise a prettier or younger person instead of a photograph of this one.
BEAUTIFYING = re.compile(
    r"\b(beautiful|flawless|perfect skin|young|youthful|younger|ageless|glamou?r|model)\b"
)


def test_shipped_templates_cover_the_professional_scenes_and_aim_at_natural_photographs():
    names = shipped_template_names()
    assert REQUIRED_SCENES <= set(names)
    for item in load_templates(names):
        template = item.template
        prompt, negative = expand_grid([item], [0])[0].prompts("sks", "woman")
        assert "sks woman" in prompt
        assert not BEAUTIFYING.search(prompt.lower()), f"{item.source}: {prompt}"
        assert "looking at the camera" in prompt or "eye contact" in prompt or "eyes to camera" in prompt
        assert "skin texture" in prompt
        assert {"plastic skin", "airbrushed"} <= {part.strip() for part in negative.split(",")}
        assert template.sampler in SAMPLERS and template.size is None  # native resolution
        assert template.variations, f"{item.source}: offers no variations"


@pytest.mark.parametrize("family", sorted(family_names()))
def test_shipped_prompts_fit_every_text_encoders_token_window(family, request):
    """CLIP silently drops every token past its 77th (BOS and EOS included): the last prompt
    parts (the lens, skin texture, the negative prompt's tail) would vanish unnoticed.
    Counted with CLIP's real BPE (the vocabulary of every SD1.5 and SDXL text encoder),
    against the window of each of the family's text encoders."""
    from clip_support import real_clip_tokenizer

    clip = real_clip_tokenizer()
    # The real vocabulary: CLIP's own ids; words the tiny vocabulary lacks split as CLIP splits them.
    assert clip("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert clip.tokenize("softbox, 85mm") == ["soft", "box</w>", ",</w>", "8</w>", "5</w>", "mm</w>"]
    from transformers import CLIPTokenizer

    from headshot.families import get_family

    pipe = _tiny_pipeline(request.getfixturevalue(f"tiny_{family.replace('-', '_')}"))
    tokenizers = [getattr(pipe, name, None) for name in ("tokenizer", "tokenizer_2")]
    windows = [t.model_max_length for t in tokenizers if isinstance(t, CLIPTokenizer)]
    if not windows:  # no CLIP encoder (FLUX.2 [klein]: Qwen3): the prompts fit the family's own window
        counter = get_family(family).attention_tokenizers(pipe)[0]  # the sequence the model sees
        for item in load_templates(shipped_template_names()):
            for job in expand_grid([item], [0]):
                for text in job.prompts("sks", "woman"):
                    assert len(counter(text).input_ids) <= counter.model_max_length, item.source
        return
    assert windows and set(windows) == {77}, windows  # SD1.5: one CLIP encoder; SDXL: two
    longest = 0
    for item in load_templates(shipped_template_names()):
        for job in expand_grid([item], [0]):
            for text in job.prompts("sks", "woman"):
                count = len(clip(text).input_ids)
                longest = max(longest, count)
                assert count <= min(windows), f"{item.source}: {count} CLIP tokens in {text!r}"
    assert longest > 60  # measured: 69 (a negative prompt); the word count said at most 60 pieces


def _tiny_pipeline(folder):
    from diffusers import DiffusionPipeline

    return DiffusionPipeline.from_pretrained(folder)


def test_grid_is_the_cartesian_product_of_variations_times_seeds(tmp_path):
    path = write_template(
        tmp_path,
        "two-way",
        variations={"colour": ["navy", "light grey"], "light": ["window", "softbox"]},
        prompt={"framing": "{identifier} {class_noun}", "wardrobe": "{colour} shirt", "lighting": "{light}"},
    )
    plain = write_template(tmp_path, "plain", variations={}, prompt={"framing": "{identifier} {class_noun}"})
    jobs = expand_grid(load_templates([str(path), str(plain)]), [3, 7])
    assert len(jobs) == 2 * 2 * 2 + 2
    keys = [job.key for job in jobs]
    assert len(set(keys)) == len(keys)
    assert "two-way/light_grey-softbox-7" in keys and "plain/3" in keys
    job = next(j for j in jobs if j.key == "two-way/light_grey-window-3")
    prompt, _ = job.prompts("sks", "person")
    assert prompt == "sks person, light grey shirt, window"


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"sharpness": 3}, "sharpness", "unknown field"),
        ({"steps": "many"}, "steps", "expected an integer"),
        ({"guidance": [1]}, "guidance", "expected a number"),
        ({"sampler": "k_lms"}, "sampler", "euler"),
        ({"size": 500}, "size", "multiple of 8"),
        ({"name": "../escape"}, "name", "not a safe folder name"),
        ({"name": "/abs/path"}, "name", "not a safe folder name"),
        ({"name": "a/b"}, "name", "not a safe folder name"),
        ({"prompt": {"framing": "portrait of a person"}}, "prompt", "{identifier}"),
        ({"prompt": {"framing": "{identifier} {class_noun} {mood}"}}, "prompt.framing", "{mood}"),
        ({"prompt": {"framing": "{identifier} {class_noun}", "lens": "85mm {"}}, "prompt.lens", "braces"),
        ({"variations": {"colour": []}}, "variations", "no values"),
        ({"variations": {"colour": ["navy", "Navy"]}}, "variations.colour", "repeat"),
    ],
)
def test_template_errors_name_the_file_and_field(tmp_path, change, field, reason):
    path = write_template(tmp_path, "scene", **change)
    with pytest.raises(HeadshotError) as error:
        load_template(path)
    message = str(error.value)
    assert str(path) in message and f"field '{field}" in message and reason in message


def test_unused_variation_and_duplicate_names_are_refused(tmp_path):
    unused = write_template(tmp_path, "unused", prompt={"framing": "{identifier} {class_noun}"})
    with pytest.raises(HeadshotError, match=r"variations\.colour.*identical"):
        load_template(unused)
    first = write_template(tmp_path / "a", "same")
    second = write_template(tmp_path / "b", "same")
    with pytest.raises(HeadshotError, match="also used by"):
        load_templates([str(first), str(second)])
    with pytest.raises(HeadshotError, match="no such shipped template.*studio-grey"):
        resolve_template_path("no-such-scene")


def test_generate_yaml_documents_the_defaults_and_the_demo_config_loads():
    assert load_config(GenerateConfig, configs_root() / "generate.yaml") == GenerateConfig()
    demo = load_config(GenerateConfig, configs_root() / "demo" / "generate.yaml")
    assert demo.ranking.require_face is False and demo.ranking.max_relative_distance is None
    load_templates(demo.templates)
    shipped = yaml.safe_load((configs_root() / "generate.yaml").read_text())
    assert set(shipped) == set(GenerateConfig.model_fields)


def test_generate_config_errors_name_the_file(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("ranking:\n  top_k: lots\nseeds: [1, 1]\n")
    with pytest.raises(HeadshotError, match=r"g\.yaml: field 'ranking\.top_k': expected an integer"):
        load_config(GenerateConfig, path)
