"""A base model fetched from the hub says what, from where and into which cache, and shows its
progress (bytes of the total, speed, time left); a cached one loads silently.

The hub is a real HTTP server on 127.0.0.1 (tests/hub_support.py), reached by the real
huggingface_hub and diffusers code through HF_ENDPOINT, in a fresh process set up as the
command line sets it up (the libraries' own bars off).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from hub_support import local_hub

ROOT = Path(__file__).resolve().parent.parent
REPO = "someone/tiny-headshot-base"
# The layout diffusers downloads for a pipeline: model_index.json and one folder per component.
FILES = {
    "model_index.json": json.dumps(
        {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.42.1",
            "unet": ["diffusers", "UNet2DConditionModel"],
        }
    ).encode(),
    "unet/config.json": b'{"_class_name": "UNet2DConditionModel"}',
    "unet/diffusion_pytorch_model.safetensors": bytes(range(256)) * 8192,  # 2 MiB
    "unet/diffusion_pytorch_model.fp16.safetensors": b"\0" * 1024,  # another variant: not fetched
    "single-file.safetensors": b"\0" * 4096,  # a top-level checkpoint: not fetched either
}
# Twice in one process: the second call finds the cached copy.
FETCH = """
import sys
from headshot.models.model_spec import BaseModelSpec
from headshot.models.loading import model_source
for attempt in ("first", "second"):
    print(f"-- {attempt}", file=sys.stderr)
    print(model_source(BaseModelSpec(source=sys.argv[1])))
"""


def fetch(endpoint: str, cache: Path) -> subprocess.CompletedProcess:
    """As the command line runs it: the libraries' own bars off (headshot/cli.py main)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env |= {"HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(cache), "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-c", FETCH, REPO]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, cwd=cache.parent)


def test_a_download_names_what_where_and_shows_its_progress_and_a_cached_model_is_silent(tmp_path):
    cache = tmp_path / "hub-cache"
    with local_hub(REPO, FILES, chunk=128 * 1024, pause=0.1) as endpoint:
        result = fetch(endpoint, cache)
    assert result.returncode == 0, result.stderr
    first, second = result.stderr.split("-- first")[1].split("-- second")
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert (folder / "unet" / "diffusion_pytorch_model.safetensors").stat().st_size == 2 * 1024 * 1024
    cache_folder = cache / "models--someone--tiny-headshot-base"
    # Before the first byte: what, from where, how much (the fp16 variant and the top-level
    # checkpoint are not counted), where to.
    assert (
        f"downloading base model {REPO} from {endpoint} (2.1 MB) into the Hugging Face cache {cache_folder}"
        in first
    )
    # The bar: bytes of the total, speed, elapsed<time left.
    bar = first[first.index("later runs use the cached copy") :]
    assert "2.00M/2.00M" in bar and "B/s" in bar, bar
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d", bar), bar
    assert "downloading" not in second
