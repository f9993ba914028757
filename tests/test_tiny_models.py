"""Tiny models of every family: built by the CLI, loaded by the real loader, generating."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headshot.models.loading import load_base_model
from headshot.models.model_spec import resolve_base_model


@pytest.mark.parametrize("family", ["sd15", "sdxl", "flux"])
def test_tiny_model_cli_builds_a_model_that_loads_and_generates(run_cli, tmp_path, family):
    out = tmp_path / f"tiny-{family}"
    result = run_cli("tiny-model", "--family", family, "--out", out)
    assert result.code == 0, result.err
    assert (out / "model_index.json").is_file()
    assert list(out.rglob("*.safetensors")), "weights must be saved as safetensors"
    assert not list(out.rglob("*.bin")), "no pickle weights"

    loaded = load_base_model(resolve_base_model(str(out)))
    assert loaded.family.name == family
    assert loaded.resolution == 64
    image = loaded.pipeline(
        "a photo of sks person",
        num_inference_steps=4,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
    ).images[0]
    assert image.size == (64, 64)
    pixels = np.asarray(image)
    assert pixels.std() > 0, "a real (random-weight) image, not a blank"


def test_tiny_sdxl_has_the_real_sdxl_layout(tiny_sdxl):
    pipe = load_base_model(resolve_base_model(str(tiny_sdxl))).pipeline
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert type(pipe.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert pipe.unet.config.addition_embed_type == "text_time"
    hidden = pipe.text_encoder.config.hidden_size + pipe.text_encoder_2.config.hidden_size
    assert pipe.unet.config.cross_attention_dim == hidden
    assert pipe.vae_scale_factor == 8, "same 8x latent downscale as the real VAE"


def test_generation_is_deterministic_per_seed(tiny_sd15):
    pipe = load_base_model(resolve_base_model(str(tiny_sd15))).pipeline

    def render(seed: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        out = pipe("a photo", num_inference_steps=3, height=64, width=64, generator=generator)
        return np.asarray(out.images[0])

    assert np.array_equal(render(1), render(1))
    assert not np.array_equal(render(1), render(2))


def test_tiny_tokenizer_keeps_prompt_words_whole():
    from headshot.families.tiny import build_tiny_tokenizer

    tokens = build_tiny_tokenizer().tokenize("a photo of sks person wearing earrings, hair")
    for word in ("sks", "person", "earrings", "hair"):
        assert f"{word}</w>" in tokens


def test_tiny_flux_has_the_real_flux_layout(tiny_flux):
    from diffusers import FluxPipeline

    pipe = FluxPipeline.from_pretrained(tiny_flux)
    assert type(pipe.text_encoder).__name__ == "CLIPTextModel"
    assert type(pipe.text_encoder_2).__name__ == "T5EncoderModel"
    assert pipe.transformer.config.guidance_embeds and pipe.transformer.config.in_channels == 64
    assert pipe.vae.config.latent_channels == 16 and pipe.vae.config.shift_factor is not None
    assert type(pipe.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert pipe.scheduler.config.use_dynamic_shifting
    # The T5 tokenizer, built offline, keeps prompt words whole and ends with </s> as T5 does.
    ids = pipe.tokenizer_2("a photo of sks person").input_ids
    assert pipe.tokenizer_2.convert_ids_to_tokens(ids) == ["▁a", "▁photo", "▁of", "▁sks", "▁person", "</s>"]


def test_pretrain_steps_give_renders_of_the_datas_scale(run_cli, tmp_path):
    """`--pretrain-steps`: the UNet learns the denoising objective on packaged photos, so its
    renders come near the training latents' unit scale (measured: RMS 4.1 random, 1.6 after
    30 steps)."""
    import torch
    from diffusers import DiffusionPipeline

    def render_rms(folder):
        pipe = DiffusionPipeline.from_pretrained(folder)
        pipe.set_progress_bar_config(disable=True)
        latents = pipe("a photo of person", num_inference_steps=4, height=64, width=64,
                       output_type="latent", generator=torch.Generator().manual_seed(0)).images  # fmt: skip
        return float(latents.pow(2).mean().sqrt())

    for steps in (0, 30):
        result = run_cli(
            "tiny-model", "--family", "sd15", "--out", tmp_path / str(steps), "--pretrain-steps", steps
        )
        assert result.code == 0, result.err
    random, pretrained = render_rms(tmp_path / "0"), render_rms(tmp_path / "30")
    assert random > 3 and pretrained < 2, (random, pretrained)
