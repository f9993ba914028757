"""Cross-attention maps: where in the image each chosen prompt word is looked at.

`CrossAttentionRecorder` installs `RecordingCrossAttnProcessor` on every cross-attention
layer of the UNet (self-attention keeps its fast processor). The processor computes
attention like diffusers' `AttnProcessor` but keeps the softmaxed probabilities of the
chosen token positions (conditional half of a guided batch, averaged over heads),
resized to the latent grid. Maps are averaged over layers per step, then over steps.

SDXL: the two text encoders' outputs are concatenated along the channel axis, not the
sequence, so a token position means the same in both; `token_positions` checks that the
two tokenizers put every chosen word at the same positions.

Which tokenizers index the keys, and which recorder a model needs, is its family's
answer (`attention_tokenizers`, `attention_recorder`); FLUX's joint attention is in
joint_attention.py and shares this module's averaging and plots.
"""

from __future__ import annotations

import math
import re

import numpy as np
from diffusers.models.attention_processor import AttnProcessor
from PIL import Image

from headshot.errors import HeadshotError


def word_positions(tokenizer, prompt: str, word: str) -> list[int]:
    """Positions of `word`'s tokens in the encoded prompt (all of a word's pieces, every occurrence)."""
    ids = tokenizer(prompt, truncation=True, max_length=tokenizer.model_max_length).input_ids
    pieces = tokenizer(word, add_special_tokens=False).input_ids
    if not pieces:
        return []
    positions: list[int] = []
    for start in range(len(ids) - len(pieces) + 1):
        if ids[start : start + len(pieces)] == pieces:
            positions.extend(range(start, start + len(pieces)))
    return positions


def token_positions(tokenizers, prompt: str, words: list[str]) -> dict[str, list[int]]:
    """Each word's token positions in the prompt (by each of `tokenizers`, which must agree).

    `tokenizers` may also be a pipeline: its family's attention tokenizers are used.
    """
    if not isinstance(tokenizers, (list, tuple)):
        from headshot.families import family_of_pipeline

        tokenizers = family_of_pipeline(tokenizers).attention_tokenizers(tokenizers)
    first = tokenizers[0]
    result = {}
    for word in words:
        positions = word_positions(first, prompt, word)
        if not positions:
            shown = " ".join(t.replace("</w>", "") for t in first.tokenize(prompt))
            raise HeadshotError(
                f"study: token '{word}' is not in the prompt '{prompt}' "
                f"(the prompt's tokens: {shown}); put the word in --prompt or drop it from --tokens"
            )
        for other in tokenizers[1:]:
            if word_positions(other, prompt, word) != positions:
                raise HeadshotError(
                    f"study: the two tokenizers put '{word}' at different positions; "
                    "attention maps need one position per word"
                )
        result[word] = positions
    return result


class RecordingCrossAttnProcessor(AttnProcessor):
    """Attention as in `AttnProcessor`, keeping the chosen tokens' probabilities."""

    def __init__(self, recorder: CrossAttentionRecorder):
        self.recorder = recorder

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **_):
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        spatial = hidden_states.ndim == 4
        if spatial:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, context_length, _ = context.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, context_length, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if encoder_hidden_states is not None and attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)

        query = attn.head_to_batch_dim(attn.to_q(hidden_states))
        key = attn.head_to_batch_dim(attn.to_k(context))
        value = attn.head_to_batch_dim(attn.to_v(context))
        probabilities = attn.get_attention_scores(query, key, attention_mask)
        self.recorder.record(probabilities, attn.heads)
        out = attn.batch_to_head_dim(probabilities.to(value.dtype) @ value)
        out = attn.to_out[1](attn.to_out[0](out))

        if spatial:
            out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class CrossAttentionRecorder:
    """`with CrossAttentionRecorder(pipe, positions, latent_hw) as rec: pipe(...)`; then `rec.maps()`."""

    def __init__(self, pipeline, positions: dict[str, list[int]], latent_hw: tuple[int, int]):
        self.pipeline = pipeline
        self.words = list(positions)
        self.positions = [positions[word] for word in self.words]
        self.latent_hw = latent_hw
        self.calls = 0
        self.step_sums: list = []  # per step: (n_words, H, W) summed over layers
        self._layers = 0
        self._model, self._saved = None, None

    def __enter__(self) -> CrossAttentionRecorder:
        unet = self.pipeline.unet
        modules = dict(unet.named_modules())

        def recording(name, processor):
            module = modules[name.removesuffix(".processor")]
            return RecordingCrossAttnProcessor(self) if getattr(module, "is_cross_attention", False) else None

        self._install(unet, recording, "UNet has no cross-attention layers to record")
        return self

    def _install(self, model, recording, missing: str) -> None:
        """Swap in `recording(name, processor)`'s processor on each layer it returns one for
        (the layers recorded), keeping the others; `__exit__` puts the originals back."""
        self._model, self._saved = model, dict(model.attn_processors)
        processors = {}
        for name, processor in self._saved.items():
            replacement = recording(name, processor)
            self._layers += replacement is not None
            processors[name] = processor if replacement is None else replacement
        if self._layers == 0:
            raise HeadshotError(f"study: this {missing}")
        model.set_attn_processor(processors)

    def __exit__(self, *exc_info) -> None:
        self._model.set_attn_processor(self._saved)

    def record(self, probabilities, heads: int) -> None:
        # A UNet call visits every cross-attention layer once: the call count gives the step.
        step = self.calls // self._layers
        self.calls += 1
        batch = probabilities.shape[0] // heads
        probabilities = probabilities.detach().float().reshape(batch, heads, *probabilities.shape[1:])
        if self.pipeline.do_classifier_free_guidance:
            probabilities = probabilities[batch // 2 :]  # the prompt's half; the first is the negative
        self.add_step_mean(step, probabilities.mean(dim=(0, 1)))

    def add_step_mean(self, step: int, mean) -> None:
        """Add one layer's (image queries, text tokens) probabilities, averaged over batch and heads."""
        import torch
        import torch.nn.functional as F

        words = torch.stack([mean[:, index].sum(dim=-1) for index in self.positions])  # (n_words, queries)
        latent_h, latent_w = self.latent_hw
        factor = math.sqrt(latent_h * latent_w / words.shape[1])
        grid = words.reshape(len(self.words), 1, round(latent_h / factor), round(latent_w / factor))
        resized = F.interpolate(grid, size=(latent_h, latent_w), mode="bilinear", align_corners=False)[:, 0]
        if step == len(self.step_sums):
            self.step_sums.append(torch.zeros_like(resized))
        self.step_sums[step] += resized.cpu()

    def per_step(self) -> np.ndarray:
        """(n_steps, n_words, H, W): each step's maps averaged over the cross-attention layers."""
        return np.stack([(total / self._layers).numpy() for total in self.step_sums])

    def maps(self) -> np.ndarray:
        """(n_words, H, W): averaged over layers and steps, each word scaled to [0, 1]."""
        return normalise(self.per_step().mean(axis=0))


def normalise(maps: np.ndarray) -> np.ndarray:
    """Each map min-max scaled to [0, 1] (a constant map becomes all zeros)."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0).astype(np.float32)


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """A [0, 1] map, upscaled to the image and coloured (inferno), blended over it."""
    from matplotlib import colormaps

    scaled = Image.fromarray((heatmap * 255).astype(np.uint8)).resize(image.size, Image.Resampling.BICUBIC)
    coloured = colormaps["inferno"](np.asarray(scaled, dtype=np.float32) / 255.0)[..., :3]
    blend = (1 - alpha) * np.asarray(image.convert("RGB"), dtype=np.float32) + alpha * coloured * 255
    return Image.fromarray(np.clip(blend, 0, 255).astype(np.uint8))


def safe_file_stem(index: int, word: str) -> str:
    return f"{index:02d}-" + (re.sub(r"[^A-Za-z0-9_-]+", "_", word).strip("_") or "token")


def plot_per_step(per_step: np.ndarray, words: list[str]):
    """A grid: one row per word, one column per step (at most 12, evenly spread), maps in [0, 1]."""
    from matplotlib.figure import Figure

    shown = sorted(
        {int(i) for i in np.linspace(0, per_step.shape[0] - 1, min(per_step.shape[0], 12)).round()}
    )
    figure = Figure(figsize=(1.0 * len(shown) + 1, 1.0 * len(words) + 0.6), layout="constrained")
    axes = figure.subplots(len(words), len(shown), squeeze=False)
    scaled = normalise(per_step)
    for row, word in enumerate(words):
        for column, step in enumerate(shown):
            axis = axes[row, column]
            axis.imshow(scaled[step, row], cmap="inferno", vmin=0, vmax=1)
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(word, fontsize=8)
            if row == 0:
                axis.set_title(str(step), fontsize=7)
    figure.suptitle("cross-attention per step (columns), averaged over layers", fontsize=9)
    return figure
