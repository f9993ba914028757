"""FLUX joint-attention maps: how much each image token attends to a chosen word's text tokens.

FLUX (.1 and .2) has no cross-attention: its double-stream blocks run one attention over the
text tokens followed by the image tokens. `JointAttentionRecorder` wraps those blocks'
processor in one that, besides computing the block's output with the block's own processor
(whichever diffusers installed, FLUX.1's or FLUX.2's: the image is unchanged), recomputes
the softmaxed scores of the image queries against every key (text and image, as the model
normalises them) and keeps the columns of the chosen words' token positions (T5's for
FLUX.1, Qwen3's for FLUX.2). The averaging over heads, layers and steps, the grid and the
plots are the cross-attention recorder's.
"""

from __future__ import annotations

from headshot.families.attention import CrossAttentionRecorder


def image_to_text_probabilities(attn, hidden_states, encoder_hidden_states, image_rotary_emb):
    """(image tokens, text tokens) attention probabilities, averaged over batch and heads."""
    import torch
    from diffusers.models.embeddings import apply_rotary_emb

    def heads(projection, norm, states):
        return norm(projection(states).unflatten(-1, (-1, attn.head_dim)))

    query = torch.cat(
        [
            heads(attn.add_q_proj, attn.norm_added_q, encoder_hidden_states),
            heads(attn.to_q, attn.norm_q, hidden_states),
        ],
        dim=1,
    )
    key = torch.cat(
        [
            heads(attn.add_k_proj, attn.norm_added_k, encoder_hidden_states),
            heads(attn.to_k, attn.norm_k, hidden_states),
        ],
        dim=1,
    )
    if image_rotary_emb is not None:
        query = apply_rotary_emb(query, image_rotary_emb, sequence_dim=1)
        key = apply_rotary_emb(key, image_rotary_emb, sequence_dim=1)
    text = encoder_hidden_states.shape[1]
    image_queries = query[:, text:].float()
    key = key.float()
    total = None
    for head in range(image_queries.shape[2]):  # one head at a time: (queries x keys) stays small
        scores = image_queries[:, :, head] @ key[:, :, head].transpose(-1, -2) / attn.head_dim**0.5
        part = scores.softmax(dim=-1)[..., :text].mean(dim=0)
        total = part if total is None else total + part
    return total / image_queries.shape[2]


class RecordingJointAttnProcessor:
    """The block's own processor, plus a record of the image-to-text probabilities."""

    def __init__(self, recorder: JointAttentionRecorder, inner):
        self.recorder = recorder
        self.inner = inner

    def __call__(
        self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None
    ):
        if encoder_hidden_states is not None:
            import torch

            with torch.no_grad():
                self.recorder.record_joint(
                    image_to_text_probabilities(attn, hidden_states, encoder_hidden_states, image_rotary_emb)
                )
        return self.inner(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)


class JointAttentionRecorder(CrossAttentionRecorder):
    """`with JointAttentionRecorder(pipe, positions, latent_hw) as rec: pipe(...)`; then `rec.maps()`."""

    def __enter__(self) -> JointAttentionRecorder:
        self._timestep, self._step, self._step_calls = None, -1, 0

        def recording(name, processor):
            if name.startswith("transformer_blocks."):  # the double-stream (joint) blocks
                return RecordingJointAttnProcessor(self, processor)
            return None

        missing = "transformer has no joint-attention blocks to record"
        self._install(self.pipeline.transformer, recording, missing)
        return self

    def record_joint(self, mean) -> None:
        # One image token per 2x2 latent patch (both FLUX generations), upsampled to the latent grid.
        # A pipeline with true classifier-free guidance (FLUX.2 [klein] base) runs the negative
        # prompt as a second pass at the same timestep, after the prompt's: only the first pass's
        # `layers` calls are the prompt's words. Steps follow the pipeline's current timestep.
        timestep = getattr(self.pipeline, "_current_timestep", None)
        if timestep is None:  # a pipeline that does not say: one pass per step
            step, first_pass = self.calls // self._layers, True
        else:
            timestep = float(timestep)
            if timestep != self._timestep:
                self._timestep, self._step_calls, self._step = timestep, 0, self._step + 1
            self._step_calls += 1
            step, first_pass = self._step, self._step_calls <= self._layers
        self.calls += 1
        if first_pass:
            self.add_step_mean(step, mean)
