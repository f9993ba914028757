"""What a user sees from the libraries: their known noise is dropped, their real warnings are not."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

SCRIPT = """
from headshot import library_notices
library_notices.install()
import diffusers, transformers
from transformers.utils import logging as tl
from diffusers.utils import logging as dl
from diffusers import StableDiffusionPipeline  # resolves CLIPImageProcessor: the torchvision notice
tl.get_logger("transformers.tokenization_utils_base").warning(
    "Token indices sequence length is longer than the specified maximum sequence length for this model")
dl.get_logger("diffusers.loaders.peft").warning(
    "No LoRA keys associated to CLIPTextModel found with the prefix='text_encoder'. This is safe")
tl.get_logger("transformers.models.clip").warning("a real transformers warning")
dl.get_logger("diffusers.pipelines").warning("a real diffusers warning")
import warnings
warnings.warn("a real deprecation", FutureWarning)
"""


def test_known_noise_is_dropped_and_real_warnings_show():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "requires torchvision" not in result.stderr
    assert "Token indices sequence length" not in result.stderr
    assert "No LoRA keys associated" not in result.stderr
    for real in ("a real transformers warning", "a real diffusers warning", "a real deprecation"):
        assert real in result.stderr


def test_a_command_prints_only_headshot_s_own_messages(tmp_path):
    command = [
        sys.executable,
        "-m",
        "headshot",
        "tiny-model",
        "--family",
        "sd15",
        "--out",
        str(tmp_path / "m"),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [f"tiny sd15 model saved to {tmp_path / 'm'}"]
