"""A FLUX.2 LoRA for ComfyUI: BFL's own module names, with fused q/k/v.

ComfyUI loads FLUX.2 in Black Forest Labs' layout (`double_blocks.N.img_attn.qkv`,
`single_blocks.N.linear1`, ...). Its LoRA key map (`comfy/lora.py`, `model_lora_keys_unet`)
accepts `lora_unet_<BFL weight name with dots as underscores>` for every weight of that
model, and names nothing of diffusers' FLUX.2 modules (its diffusers table is FLUX.1's).
So the file written here names BFL modules, as diffusers' own single-file converter
(`convert_flux2_transformer_checkpoint_to_diffusers`) maps them onto diffusers' modules:

- a double block's fused `img_attn.qkv` (`txt_attn.qkv`) is diffusers' separate q, k, v
  (`add_q/k/v_proj`) stacked in that order. Three rank-r LoRAs are one exact rank-3r LoRA
  of the fused weight: the down-projections stacked, the up-projections block-diagonal;
- every other targeted module is renamed one to one (single blocks' `linear1` is already
  diffusers' fused `to_qkv_mlp_proj`, `linear2` its `attn.to_out`).

Each entry has `lora_down`, `lora_up` and `alpha` = its rank: the trained alpha / rank
scale is folded into the up-projection, as in the FLUX.1 export.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from headshot.errors import HeadshotError
from headshot.families.export import peft_layers
from headshot.records import atomic_write_bytes

# diffusers module (inside a double block) -> (BFL module, slice of a fused weight or None)
DOUBLE_BLOCK = {
    "attn.to_q": ("img_attn.qkv", 0),
    "attn.to_k": ("img_attn.qkv", 1),
    "attn.to_v": ("img_attn.qkv", 2),
    "attn.add_q_proj": ("txt_attn.qkv", 0),
    "attn.add_k_proj": ("txt_attn.qkv", 1),
    "attn.add_v_proj": ("txt_attn.qkv", 2),
    "attn.to_out.0": ("img_attn.proj", None),
    "attn.to_add_out": ("txt_attn.proj", None),
    "ff.linear_in": ("img_mlp.0", None),
    "ff.linear_out": ("img_mlp.2", None),
    "ff_context.linear_in": ("txt_mlp.0", None),
    "ff_context.linear_out": ("txt_mlp.2", None),
}
SINGLE_BLOCK = {"attn.to_qkv_mlp_proj": "linear1", "attn.to_out": "linear2"}
TOP_LEVEL = {
    "x_embedder": "img_in",
    "context_embedder": "txt_in",
    "proj_out": "final_layer.linear",
    "time_guidance_embed.timestep_embedder.linear_1": "time_in.in_layer",
    "time_guidance_embed.timestep_embedder.linear_2": "time_in.out_layer",
    "time_guidance_embed.guidance_embedder.linear_1": "guidance_in.in_layer",
    "time_guidance_embed.guidance_embedder.linear_2": "guidance_in.out_layer",
    "double_stream_modulation_img.linear": "double_stream_modulation_img.lin",
    "double_stream_modulation_txt.linear": "double_stream_modulation_txt.lin",
    "single_stream_modulation.linear": "single_stream_modulation.lin",
}
_BLOCK = re.compile(r"(transformer_blocks|single_transformer_blocks)\.(\d+)\.(.+)")


def bfl_module(diffusers_module: str) -> tuple[str, int | None]:
    """A diffusers FLUX.2 transformer module name -> (BFL module name, slice index or None)."""
    match = _BLOCK.fullmatch(diffusers_module)
    if match:
        kind, index, inner = match.groups()
        if kind == "transformer_blocks" and inner in DOUBLE_BLOCK:
            name, part = DOUBLE_BLOCK[inner]
            return f"double_blocks.{index}.{name}", part
        if kind == "single_transformer_blocks" and inner in SINGLE_BLOCK:
            return f"single_blocks.{index}.{SINGLE_BLOCK[inner]}", None
    elif diffusers_module in TOP_LEVEL:
        return TOP_LEVEL[diffusers_module], None
    raise HeadshotError(f"export: no ComfyUI (BFL) name for the FLUX.2 module '{diffusers_module}'")


def _comfyui_prefixed(bfl: str) -> str:
    return "lora_unet_" + bfl.replace(".", "_")


def comfyui_flux2_name(diffusers_module: str) -> str:
    """ComfyUI's name for the LoRA of a diffusers FLUX.2 transformer module (q, k, v share one)."""
    return _comfyui_prefixed(bfl_module(diffusers_module)[0])


def comfyui_flux2_state(pipeline, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """The transformer's LoRA in ComfyUI's `lora_unet_<BFL module>` naming, q/k/v fused."""
    layers = peft_layers(pipeline, False, scale, denoiser="transformer")["transformer"]
    groups: dict[str, dict[int | None, dict[str, torch.Tensor]]] = {}
    for key, value in layers.items():
        module, _, part = key.rpartition(".lora_")
        target, piece = bfl_module(module)
        groups.setdefault(target, {}).setdefault(piece, {})["down" if part == "A.weight" else "up"] = value
    state: dict[str, torch.Tensor] = {}
    for target, pieces in groups.items():
        if None in pieces:
            down, up = pieces[None]["down"], pieces[None]["up"]
        else:  # q, k, v of one fused weight: stacked downs, block-diagonal ups (absent parts zero)
            some = next(iter(pieces.values()))
            rank, rows = some["down"].shape[0], some["up"].shape[0]
            zero_down = torch.zeros_like(some["down"])
            zero_up = torch.zeros(rows, rank, dtype=some["up"].dtype)
            down = torch.cat([pieces.get(i, {"down": zero_down})["down"] for i in range(3)])
            up = torch.block_diag(*[pieces.get(i, {"up": zero_up})["up"] for i in range(3)])
        name = _comfyui_prefixed(target)
        state[f"{name}.lora_down.weight"] = down.contiguous()
        state[f"{name}.lora_up.weight"] = up.contiguous()
        state[f"{name}.alpha"] = torch.tensor(float(down.shape[0]))
    return state


def save_comfyui_flux2_lora(pipeline, out: Path, scale: float = 1.0) -> Path:
    from safetensors.torch import save

    atomic_write_bytes(Path(out), save(comfyui_flux2_state(pipeline, scale), metadata={"format": "pt"}))
    return Path(out)
