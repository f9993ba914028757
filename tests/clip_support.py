"""CLIP's real tokenizer, built from its published BPE merges (no download at test time).

`make setup` copies `bpe_simple_vocab_16e6.txt.gz` out of the open_clip_torch wheel
(tools/fetch_clip_vocab.py). The vocabulary is laid out as CLIP's own tokenizer lays it
out: the 256 byte symbols, the same with the end-of-word mark, one entry per merge
(the first 48,894 merges), then <|startoftext|> and <|endoftext|>: 49,408 tokens, the
vocabulary of every Stable Diffusion text encoder (SD1.5's one, both of SDXL's).
"""

from __future__ import annotations

import gzip
import sys
from functools import cache
from pathlib import Path

VOCAB_FILE = Path(sys.prefix) / "share" / "clip" / "bpe_simple_vocab_16e6.txt.gz"
MERGES = 49152 - 256 - 2


def _byte_symbols() -> list[str]:
    """CLIP's byte-to-symbol order: printable bytes as themselves first, the rest shifted past 255."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + n) for n in range(len(others))]


@cache
def real_clip_tokenizer():
    from transformers import CLIPTokenizer

    assert VOCAB_FILE.is_file(), f"{VOCAB_FILE} missing: run `make setup` (tools/fetch_clip_vocab.py)"
    lines = gzip.decompress(VOCAB_FILE.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : MERGES + 1]]  # line 0 is a version header
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, model_max_length=77)
