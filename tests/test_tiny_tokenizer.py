"""The tiny models' CLIP tokenizer keeps each of its words whole, so the shipped prompts fit
77 tokens in the demo as they do with the real tokenizer (no truncation warning per render)."""

from __future__ import annotations

from headshot.families.tiny import VOCABULARY, build_tiny_tokenizer
from headshot.pipelines.templates import expand_grid, load_templates, shipped_template_names


def test_every_vocabulary_word_is_one_token_and_every_shipped_prompt_fits():
    """Issue 25: merges chained left to right let an earlier word's merge split a later word
    ("plastic" became pla+st+i+c), so every demo render warned of a truncated negative prompt."""
    tokenizer = build_tiny_tokenizer()
    split = [word for word in VOCABULARY if not word.isdigit() and len(tokenizer.tokenize(word)) != 1]
    assert split == []
    for item in load_templates(shipped_template_names()):
        for job in expand_grid([item], [0]):
            for text in job.prompts("sks", "woman"):
                count = len(tokenizer(text).input_ids)
                assert count <= 77, f"{item.source}: {count} tiny-tokenizer tokens in {text!r}"
