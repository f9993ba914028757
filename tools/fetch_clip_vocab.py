"""Put CLIP's real BPE merges (`bpe_simple_vocab_16e6.txt.gz`) where the tests find them.

The prompt-length test counts every shipped prompt in real CLIP tokens (77 per text
encoder). No model weights or tokenizer files can be downloaded, but the open_clip_torch
wheel on PyPI ships the merges file: `pip download --no-deps` fetches the wheel alone
(nothing is installed, so the locked environment is unchanged), and this script copies
the one file out of it into `<venv>/share/clip/`, checked against its SHA-256.

Run by `make setup`: `python tools/fetch_clip_vocab.py [TARGET_FILE]`.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "open_clip_torch==3.3.0"
MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
SHA256 = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
TARGET = Path(sys.prefix) / "share" / "clip" / "bpe_simple_vocab_16e6.txt.gz"


def fetch(target: Path = TARGET) -> Path:
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == SHA256:
        return target
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "--dest", folder]
        subprocess.run(command, check=True)
        (wheel,) = Path(folder).glob("*.whl")
        data = zipfile.ZipFile(wheel).read(MEMBER)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"error: {WHEEL}'s {MEMBER} has SHA-256 {digest}, expected {SHA256}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)
    return target


if __name__ == "__main__":
    print(f"CLIP BPE merges: {fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else TARGET)}")
