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
    # The real model at full size (configs/full-size/<full_size>.yaml), as its publisher states it:
    full_size: str = ""
    denoiser_billions: float = 0.0  # the denoiser's parameters, published (rounded to 0.01 B)
    latents_1024: tuple[int, int, int] = (0, 0, 0)  # the training layout for a 1024 px image
    prompt_512: tuple = ()  # (tokens, width, pooled) at max_sequence_length 512
    attention_lora_layers: int = 0  # layers `lora_layers: attention` wraps at full size
    encoder_runs_on_meta: bool = True  # False: its output shape is derived from the configs only

    def full_size_lora_file_names(self, denoiser_config: dict) -> set[str]:
        """What the other tools' loaders look for, for every attention layer of the full-size
        denoiser: kohya's UNet names (AUTOMATIC1111, ComfyUI), ComfyUI's diffusers-FLUX names, and
        BFL's FLUX.2 layout (double_blocks.N.img_attn.qkv, single_blocks.N.linear1/linear2)."""
        config = denoiser_config
        if self.denoiser == "unet":
            return _kohya_unet_attention_names(config)
        if self.name == "flux":
            double = [f"transformer_blocks_{i}_attn_{m}" for i in range(config["num_layers"])
                      for m in ("to_q", "to_k", "to_v", "to_out_0", "add_q_proj", "add_k_proj",
                                "add_v_proj", "to_add_out")]  # fmt: skip
            single = [f"single_transformer_blocks_{i}_attn_{m}" for i in range(config["num_single_layers"])
                      for m in ("to_q", "to_k", "to_v")]  # fmt: skip
            return {"lora_transformer_" + name for name in double + single}
        double = [f"double_blocks_{i}_{m}" for i in range(config["num_layers"])
                  for m in ("img_attn_qkv", "txt_attn_qkv", "img_attn_proj", "txt_attn_proj")]  # fmt: skip
        single = [
            f"single_blocks_{i}_{m}"
            for i in range(config["num_single_layers"])
            for m in ("linear1", "linear2")
        ]
        return {"lora_unet_" + name for name in double + single}

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


def _kohya_unet_attention_names(config: dict) -> set[str]:
    """kohya's names of every attention projection of a diffusers UNet config (attn1 self, attn2 cross)."""
    levels = len(config["block_out_channels"])
    depth = config.get("transformer_layers_per_block", 1)
    depth = depth if isinstance(depth, list) else [depth] * levels
    per_level = config["layers_per_block"]
    places = []
    for level, kind in enumerate(config["down_block_types"]):
        if kind.startswith("CrossAttn"):
            places += [(f"down_blocks_{level}_attentions_{i}", depth[level]) for i in range(per_level)]
    places.append(("mid_block_attentions_0", depth[-1]))
    for level, kind in enumerate(config["up_block_types"]):
        if kind.startswith("CrossAttn"):
            places += [
                (f"up_blocks_{level}_attentions_{i}", depth[levels - 1 - level]) for i in range(per_level + 1)
            ]
    return {
        f"lora_unet_{place}_transformer_blocks_{block}_{attn}_{proj}"
        for place, blocks in places
        for block in range(blocks)
        for attn in ("attn1", "attn2")
        for proj in ("to_q", "to_k", "to_v", "to_out_0")
    }


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
        full_size="sd15",
        denoiser_billions=0.86,
        latents_1024=(4, 128, 128),
        prompt_512=(77, 768, None),
        attention_lora_layers=128,
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
        full_size="sdxl",
        denoiser_billions=2.57,
        latents_1024=(4, 128, 128),
        prompt_512=(77, 2048, 1280),
        attention_lora_layers=560,
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
        full_size="flux-dev",
        denoiser_billions=11.9,
        latents_1024=(16, 128, 128),
        prompt_512=(512, 4096, 768),
        attention_lora_layers=266,
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
        full_size="flux2-klein-base",
        denoiser_billions=3.88,
        latents_1024=(128, 64, 64),
        prompt_512=(512, 7680, None),
        attention_lora_layers=80,
        encoder_runs_on_meta=False,
    ),
]
