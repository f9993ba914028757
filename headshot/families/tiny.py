"""The parts every family's tiny model is built from (random weights, for tests and the demo;
`headshot.training.tiny_model.save_tiny_model` builds, pre-trains if asked, and saves one).

Each family builds its own tiny model in its `tiny` method (FLUX.2 [klein]'s, larger, in
`flux2_klein_tiny.py`), from the parts here: a small CLIP BPE and T5 tokenizer built on the
spot, CLIP text encoders, a VAE with the real 8x downscale whose latent scale is calibrated
on packaged portraits, and a small UNet. The models have the same pipeline class and
component layout as the real families, so every code path that runs on them runs on a real
model too.
"""

from __future__ import annotations

from dataclasses import dataclass

# Words that prompts and attention studies use; each becomes one token when possible.
VOCABULARY = (
    "a photo of sks person woman man portrait headshot professional studio grey white "
    "seamless background office window light outdoor natural bokeh actor tight crop "
    "creative tech casual formal low key lighting conference speaker stage wearing "
    "shirt blazer suit sweater dress navy black blue green red earrings glasses hair "
    "eyes skin smile looking at camera face soft sharp focus lens mm 85 50 photograph "
    "realistic texture blurry cartoon painting deformed plastic smooth old young and "
    "with in the on by "
    # The shipped scene templates' words, so that their prompts fit CLIP's 77 tokens here as
    # they do with the real tokenizer (unknown words would be spelled out letter by letter).
    "airbrushed asymmetric away backdrop beauty behind blouse blurred brick bright camel "
    "catchlights cgi charcoal clamshell clear close cluttered collar colour colours contact "
    "crewneck crushed dark daylight denim depth desk direct doll evenly expression extra eye "
    "facing far field figure filter fingers fluorescent forehead from front glare golden harsh "
    "head heavy high hour illustration interior jacket large life lights lit loft makeup "
    "microphone mid midday mismatched modern olive one open out outdoors paper plain plants pores "
    "real relaxed rembrandt render retouched retouching rim shade shadows shallow shoulders side "
    "simple slight smoothed softbox softly squinting subtle sun text tone trees true visible "
    "wardrobe warm warmth warped watermark wax workspace"
).split()


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable unicode character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


def _bpe(pieces: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """CLIP's merge loop: join every occurrence of the best-ranked adjacent pair until none is ranked."""
    while len(pieces) > 1:
        pairs = [(ranks.get((a, b)), i) for i, (a, b) in enumerate(zip(pieces, pieces[1:]))]
        ranked = [(rank, i) for rank, i in pairs if rank is not None]
        if not ranked:
            break
        best = min(ranked)[0]
        merged, i = [], 0
        while i < len(pieces):
            if i + 1 < len(pieces) and ranks.get((pieces[i], pieces[i + 1])) == best:
                merged.append(pieces[i] + pieces[i + 1])
                i += 2
            else:
                merged.append(pieces[i])
                i += 1
        pieces = merged
    return pieces


def build_tiny_tokenizer():
    """A byte-level BPE tokenizer in CLIP's format: every text encodes, known words whole."""
    from transformers import CLIPTokenizer

    symbols = list(bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for symbol in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(symbol, len(vocab))
    merges: list[tuple[str, str]] = []
    ranks: dict[tuple[str, str], int] = {}
    for word in VOCABULARY:
        # What the merges so far make of the word (BPE merges by rank, not left to right, so
        # an earlier word's merge such as ("s", "t") can split "plastic" as "pla st i c"), then
        # new merges, ranked after all others, join those pieces into one token. Words
        # already made whole are unaffected: a later-ranked merge never applies before theirs.
        pieces = _bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(pieces) > 1:
            pair = (pieces[0], pieces[1])
            ranks[pair] = len(merges)
            merges.append(pair)
            pieces = [pieces[0] + pieces[1], *pieces[2:]]
            vocab.setdefault(pieces[0], len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab.setdefault(special, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def clip_text_encoder(vocab_size: int, with_projection: bool, hidden: int = 32):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=hidden,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    model_class = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return model_class(config)


# The tiny VAEs' layout (every family's): four blocks, the same 8x downscale as the real VAEs,
# with tiny channel counts.
VAE_LAYOUT = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    block_out_channels=(8, 16, 16, 16),
    layers_per_block=1,
    norm_num_groups=8,
    sample_size=64,
)


def vae(latent_channels: int = 4, **extra):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**VAE_LAYOUT, latent_channels=latent_channels, **extra)


def calibration_portraits(size: int = 64) -> list:
    """Four square crops of the packaged public-domain portraits as (3, size, size) in [-1, 1]."""
    import numpy as np
    import torch

    from headshot.samples import astronaut, grace_hopper

    portraits = []
    for photo in (grace_hopper(), astronaut()):
        side = min(photo.size)
        for box in ((0, 0, side, side), (photo.width - side, photo.height - side, photo.width, photo.height)):
            tile = photo.crop(box).resize((size, size))
            portraits.append(
                torch.from_numpy(np.asarray(tile, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)
            )
    return portraits


def calibrate_latent_scale(vae) -> None:
    """Set the VAE's scaling_factor so portrait latents have unit variance.

    That is how Stable Diffusion's own factor (0.18215) was chosen. The random tiny VAE's
    latents are far smaller than the real one's, and with the real factor every image
    would encode to nearly the same near-zero latent: nothing could be learned from them.
    """
    import torch

    with torch.no_grad():
        mean = vae.encode(torch.stack(calibration_portraits())).latent_dist.mean
    shift = vae.config.shift_factor
    if shift is not None:  # FLUX's VAE also centres its latents
        shift = float(mean.mean())
        vae.register_to_config(shift_factor=shift)
    vae.register_to_config(scaling_factor=1.0 / float((mean - (shift or 0.0)).std()))


def unet(cross_attention_dim: int, pooled_dim: int | None = None):
    """A two-block UNet; with `pooled_dim`, SDXL's added text-and-time embedding."""
    from diffusers import UNet2DConditionModel

    common = dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        norm_num_groups=8,
    )
    if pooled_dim is None:
        return UNet2DConditionModel(attention_head_dim=8, **common)
    time_embed_dim = 8
    return UNet2DConditionModel(
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # six time ids (original size, crop top-left, target size) plus the pooled text.
        projection_class_embeddings_input_dim=6 * time_embed_dim + pooled_dim,
        **common,
    )


SD_SCHEDULE = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
# FLUX.1's and FLUX.2's own sampler settings: dynamic shifting of the sigmas by resolution
# (FLUX.1 computes mu linearly from these; FLUX.2's pipeline supplies its empirical mu).
FLOW_SCHEDULE = dict(
    shift=3.0,
    use_dynamic_shifting=True,
    base_shift=0.5,
    max_shift=1.15,
    base_image_seq_len=256,
    max_image_seq_len=4096,
)


@dataclass
class CommonParts:
    vae: object
    tokenizer: object

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)


def common_parts(seed: int, **vae_options) -> CommonParts:
    """Seed, then a calibrated VAE and a CLIP tokenizer: the start of every tiny model."""
    import torch

    torch.manual_seed(seed)
    model = vae(**vae_options)
    calibrate_latent_scale(model)
    return CommonParts(model, build_tiny_tokenizer())


def build_tiny_t5_tokenizer(max_length: int = 512):
    """A unigram (sentencepiece-style) tokenizer in T5's format, built offline.

    Ids 0-2 are T5's <pad>, </s>, <unk>; every vocabulary word is one "▁word" piece, and
    single characters (with and without the word-start mark) let any other text encode.
    """
    import string

    from transformers import T5Tokenizer

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    seen = {piece for piece, _ in pieces}
    for word in VOCABULARY:
        if f"▁{word}" not in seen:
            pieces.append((f"▁{word}", -1.0))
            seen.add(f"▁{word}")
    for char in string.ascii_letters + string.digits + string.punctuation:
        for piece in (char, f"▁{char}"):
            if piece not in seen:
                pieces.append((piece, -10.0))
                seen.add(piece)
    pieces.append(("▁", -5.0))
    return T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=max_length)
