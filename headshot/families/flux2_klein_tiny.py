"""A tiny FLUX.2 [klein]-shaped model with random weights, for tests and the demo.

Same pipeline class and component layout as black-forest-labs/FLUX.2-klein-base-4B:
`Flux2KleinPipeline` with a Qwen3 causal LM as its text encoder (the pipeline stacks the
hidden states of layers 9, 18 and 27, so the tiny encoder has 28 layers, 16 wide), a
byte-level BPE tokenizer in Qwen2's format with a chat template built on the spot, a
`Flux2Transformer2DModel` without a guidance embedding (klein is not guidance-distilled),
its shared modulations scaled to gates of order one (`calibrate_modulation`), and an
`AutoencoderKLFlux2` with 32 latent channels whose batch-norm statistics (what the pipeline
normalises the 2x2-patchified latents with) are measured on the packaged portraits when it
is built, as the real VAE's were measured on its training images.
"""

from __future__ import annotations

from headshot.families import tiny

# Qwen's chat markers, and the empty reasoning block its template writes when thinking is off.
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
# Qwen3's chat format (user turn, then the assistant's turn opened): the pipeline renders every
# prompt through `apply_chat_template(..., add_generation_prompt=True, enable_thinking=False)`.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and not enable_thinking -%}"
    "{{ '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif -%}"
    "{%- endif -%}"
)
TEXT_LAYERS = 28


def build_tiny_qwen_tokenizer(max_length: int = 512):
    """A byte-level BPE tokenizer in Qwen2's format: any text encodes, and each vocabulary word
    after a space (as Qwen's pre-tokenizer splits a prompt: "Ġword") is one token.

    Every merge extends a space-led prefix ("Ġ" + "p" -> "Ġp", "Ġp" + "h" -> "Ġph"...), so one
    word's merges can never split another's; a word without a leading space stays in letters.
    """
    from transformers import Qwen2Tokenizer

    space = tiny.bytes_to_unicode()[ord(" ")]  # "Ġ"
    vocab: dict[str, int] = {}
    for symbol in tiny.bytes_to_unicode().values():
        vocab.setdefault(symbol, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in tiny.VOCABULARY:
        current = space
        for char in word:
            if current + char not in vocab:
                merges.append((current, char))
                vocab[current + char] = len(vocab)
            current += char
    for special in SPECIAL_TOKENS:
        vocab.setdefault(special, len(vocab))
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=merges, model_max_length=max_length)
    tokenizer.add_special_tokens({"additional_special_tokens": list(SPECIAL_TOKENS[1:])})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def qwen3_text_encoder(vocab_size: int, hidden: int = 16):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM(
        Qwen3Config(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=TEXT_LAYERS,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=hidden // 2,
            max_position_embeddings=512,
            tie_word_embeddings=True,
        )
    )


def flux2_vae():
    from diffusers import AutoencoderKLFlux2

    # The tiny layout of the other families with the real FLUX.2 VAE's 32 latent channels.
    return AutoencoderKLFlux2(**tiny.VAE_LAYOUT, latent_channels=32)


def calibrate_batch_norm(vae, patchify) -> None:
    """Set the VAE's latent batch-norm statistics from the packaged portraits' latents as the
    family's `patchify` lays them out (passed in: the family module owns it, and imports this one)."""
    import torch

    pixels = torch.stack(tiny.calibration_portraits())
    with torch.no_grad():
        latents = patchify(vae.encode(pixels).latent_dist.mode())
    vae.bn.running_mean.copy_(latents.mean(dim=(0, 2, 3)))
    vae.bn.running_var.copy_(latents.var(dim=(0, 2, 3)))


def calibrate_modulation(transformer, rms: float = 1.0) -> None:
    """Scale the shared modulation layers so their shift, scale and gate have RMS `rms` over the
    timesteps.

    FLUX.2 has no biases and modulates every block from one timestep embedding through two
    more bias-free layers: at PyTorch's default initialisation the gates come out near 0.03,
    so every block's output is all but switched off and the model is nearly its input and
    output projections, which a LoRA on the blocks cannot change. A trained model's gates are
    of order one; so are these after the scaling (the weights stay random).
    """
    import torch

    with torch.no_grad():
        timesteps = torch.linspace(0.02, 1.0, 50) * 1000  # the transformer's own timestep scale
        embedding = transformer.time_guidance_embed(timesteps, None)
        for modulation in (
            transformer.double_stream_modulation_img,
            transformer.double_stream_modulation_txt,
            transformer.single_stream_modulation,
        ):
            current = float(modulation(embedding).pow(2).mean().sqrt())
            modulation.linear.weight.mul_(rms / current)


def tiny_flux2_klein(patchify, seed: int = 0):
    """The tiny `Flux2KleinPipeline` (undistilled, like the base model training starts from);
    `patchify` is the family's 2x2 latent layout, for the VAE's batch-norm statistics."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, Flux2KleinPipeline, Flux2Transformer2DModel

    torch.manual_seed(seed)
    vae = flux2_vae()
    calibrate_batch_norm(vae, patchify)
    tokenizer = build_tiny_qwen_tokenizer()
    text_encoder = qwen3_text_encoder(len(tokenizer))
    transformer = Flux2Transformer2DModel(
        patch_size=1,
        in_channels=128,  # 32 latent channels x the 2x2 patch
        num_layers=2,
        num_single_layers=2,
        # 128 wide, as wide as a latent token (the frozen output projection must reach every channel).
        attention_head_dim=32,
        num_attention_heads=4,
        joint_attention_dim=3 * text_encoder.config.hidden_size,  # three stacked layers
        axes_dims_rope=(8, 8, 8, 8),  # (time, row, column, text position)
        guidance_embeds=False,
    )
    calibrate_modulation(transformer)
    return Flux2KleinPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**tiny.FLOW_SCHEDULE),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        transformer=transformer,
        is_distilled=False,
    )
