"""What each registered family's tiny model must look like: the one per-family input of the
contract suite (tests/test_families.py), as diffusers' pipeline tests give dummy components.

A new family adds one `FamilyCase` here; every contract test then runs on it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FamilyCase:
    name: str
    fixture: str  # the conftest fixture that saves its tiny model
    pipeline_class: str
    denoiser: str
    latent_channels: int
    training_latents: tuple[int, int, int]  # (c, h, w) the denoiser trains on, for a 64 px image
    hidden_dim: int  # width of the prompt sequence the denoiser attends to
    pooled_dim: int | None
    size_multiple: int
    native_resolution: int
    # Tensor names of a single-file checkpoint in the family's original layout.
    single_file_keys: tuple[str, ...]

    def reference_prompt_embeddings(self, pipe, prompt: str):
        """(hidden, pooled) as the diffusers pipeline itself encodes the prompt."""
        if self.name == "sd15":
            hidden, _ = pipe.encode_prompt(prompt, "cpu", 1, False)
            return hidden, None
        if self.name == "sdxl":
            hidden, _, pooled, _ = pipe.encode_prompt(prompt, device="cpu", do_classifier_free_guidance=False)
            return hidden, pooled
        if self.name == "flux2-klein":
            hidden, _ = pipe.encode_prompt(prompt, device="cpu", max_sequence_length=32)
            return hidden, None
        hidden, pooled, _ = pipe.encode_prompt(prompt, prompt_2=None, device="cpu", max_sequence_length=32)
        return hidden, pooled


CASES = [
    FamilyCase(
        name="sd15",
        fixture="tiny_sd15",
        pipeline_class="StableDiffusionPipeline",
        denoiser="unet",
        latent_channels=4,
        training_latents=(4, 8, 8),
        hidden_dim=32,
        pooled_dim=None,
        size_multiple=8,
        native_resolution=512,
        single_file_keys=(
            "model.diffusion_model.input_blocks.0.0.weight",
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight",
        ),
    ),
    FamilyCase(
        name="sdxl",
        fixture="tiny_sdxl",
        pipeline_class="StableDiffusionXLPipeline",
        denoiser="unet",
        latent_channels=4,
        training_latents=(4, 8, 8),
        hidden_dim=64,
        pooled_dim=32,
        size_multiple=8,
        native_resolution=1024,
        single_file_keys=(
            "model.diffusion_model.input_blocks.0.0.weight",
            "conditioner.embedders.1.model.text_projection",
        ),
    ),
    FamilyCase(
        name="flux",
        fixture="tiny_flux",
        pipeline_class="FluxPipeline",
        denoiser="transformer",
        latent_channels=16,
        training_latents=(16, 8, 8),
        hidden_dim=32,
        pooled_dim=32,
        size_multiple=16,
        native_resolution=1024,
        single_file_keys=(
            "double_blocks.0.img_attn.qkv.weight",
            "single_blocks.0.linear1.weight",
            "guidance_in.in_layer.weight",
            "img_in.weight",
        ),
    ),
    FamilyCase(
        name="flux2-klein",
        fixture="tiny_flux2_klein",
        pipeline_class="Flux2KleinPipeline",
        denoiser="transformer",
        latent_channels=32,
        training_latents=(128, 4, 4),  # 2x2-patchified, batch-normalised
        hidden_dim=48,  # three stacked Qwen3 layers of 16
        pooled_dim=None,
        size_multiple=16,
        native_resolution=1024,
        single_file_keys=(
            "double_blocks.0.img_attn.qkv.weight",
            "single_blocks.0.linear1.weight",
            "double_stream_modulation_img.lin.weight",
            "img_in.weight",
        ),
    ),
]
