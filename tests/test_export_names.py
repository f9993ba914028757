"""The kohya export's names are the ones ComfyUI and AUTOMATIC1111 look for.

The expected names are derived the way those programs derive them (read from ComfyUI's
`comfy/lora.py` `model_lora_keys_clip` and AUTOMATIC1111's `extensions-builtin/Lora`
fallback for `lora_te1_text_model` keys), from the original CLIP layout
(`text_model.encoder.layers.N.<module>`), not from whatever transformers names today.
A name neither program expects is a tensor they drop without a word.
"""

from __future__ import annotations

import pytest
from safetensors import safe_open

from headshot.families.export import save_kohya_lora
from headshot.training.adapters import add_lora_adapters
from headshot.training.finetune_config import FinetuneConfig
from headshot.training.tiny_model import build_tiny_pipeline

# The CLIP modules both programs map a LoRA onto, and the kohya spelling of each.
CLIP_MODULES = {
    "mlp.fc1": "mlp_fc1",
    "mlp.fc2": "mlp_fc2",
    "self_attn.k_proj": "self_attn_k_proj",
    "self_attn.q_proj": "self_attn_q_proj",
    "self_attn.v_proj": "self_attn_v_proj",
    "self_attn.out_proj": "self_attn_out_proj",
}


def comfyui_text_encoder_names(clip_l_layers: int, clip_g_layers: int) -> dict[str, str]:
    """LoRA name -> the model weight ComfyUI patches, for CLIP-L (and CLIP-G beside it)."""
    names = {}
    for layer in range(clip_l_layers):
        for module, kohya in CLIP_MODULES.items():
            weight = f"clip_l.transformer.text_model.encoder.layers.{layer}.{module}.weight"
            names[f"lora_te_text_model_encoder_layers_{layer}_{kohya}"] = weight
            names[f"lora_te1_text_model_encoder_layers_{layer}_{kohya}"] = weight
    for layer in range(clip_g_layers):
        for module, kohya in CLIP_MODULES.items():
            weight = f"clip_g.transformer.text_model.encoder.layers.{layer}.{module}.weight"
            names[f"lora_te2_text_model_encoder_layers_{layer}_{kohya}"] = weight
    return names


def a1111_first_encoder_modules(family: str, layers: int) -> set[str]:
    """AUTOMATIC1111's module names for the first text encoder (its network_layer_mapping),
    and the rewrite it applies to a `lora_te1_text_model...` key to find one of them."""
    prefix = "0_transformer_text_model" if family == "sdxl" else "transformer_text_model"
    return {
        f"{prefix}_encoder_layers_{layer}_{kohya}"
        for layer in range(layers)
        for kohya in CLIP_MODULES.values()
    }


def _a1111_lookup(family: str, key: str) -> str:
    target = "0_transformer_text_model" if family == "sdxl" else "transformer_text_model"
    return key.replace("lora_te1_text_model", target)


@pytest.fixture(scope="module", params=["sd15", "sdxl"])
def export(request, tmp_path_factory):
    """(family, tensor names, metadata, layers per text encoder) of a text-encoder LoRA export."""
    family = request.param
    pipe = build_tiny_pipeline(family)
    add_lora_adapters(pipe, FinetuneConfig(base_model="unused", train_text_encoder=True, rank=4), seed=0)
    out = save_kohya_lora(pipe, tmp_path_factory.mktemp(family) / "kohya.safetensors", True)
    with safe_open(str(out), "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
    layers = {
        name: getattr(pipe, name).config.num_hidden_layers
        for name in ("text_encoder", "text_encoder_2")
        if getattr(pipe, name, None) is not None
    }
    return family, keys, metadata, layers


def _module_names(keys: set[str], prefix: str) -> set[str]:
    return {key.split(".")[0] for key in keys if key.startswith(prefix)}


def test_every_text_encoder_tensor_has_a_name_comfyui_maps(export):
    family, keys, _, layers = export
    te_modules = {key.split(".")[0] for key in keys if key.startswith("lora_te")}
    expected = comfyui_text_encoder_names(layers["text_encoder"], layers.get("text_encoder_2", 0))
    assert te_modules, "the export must contain the text-encoder LoRA"
    assert te_modules - expected.keys() == set(), "names ComfyUI would drop"
    # Every trained projection is there: 4 attention projections per layer of each encoder.
    first = _module_names(keys, "lora_te1_")
    assert len(first) == 4 * layers["text_encoder"]
    if family == "sdxl":
        assert len(_module_names(keys, "lora_te2_")) == 4 * layers["text_encoder_2"]
    for key in keys:
        assert key.endswith((".lora_down.weight", ".lora_up.weight", ".alpha")), key


def test_first_encoder_names_resolve_to_automatic1111_modules(export):
    family, keys, _, layers = export
    modules = a1111_first_encoder_modules(family, layers["text_encoder"])
    first = _module_names(keys, "lora_te1_")
    assert first and {_a1111_lookup(family, name) for name in first} <= modules


def test_kohya_metadata_names_the_base_model_version(export):
    family, _, metadata, _ = export
    assert metadata["ss_base_model_version"] == {"sd15": "sd_v1", "sdxl": "sdxl_base_v1-0"}[family]
    # AUTOMATIC1111 files a LoRA as SDXL exactly when this starts with "sdxl_".
    assert metadata["ss_base_model_version"].startswith("sdxl_") == (family == "sdxl")
