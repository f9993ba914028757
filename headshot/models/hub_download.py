"""Fetch a base model from the Hugging Face hub where the person waiting can see it happen.

A real base model is several GB; its first download takes many minutes. The command line
turns off the libraries' own bars (they are noise on every cached run, and off anyway when
stderr is not a terminal), so this module says, before the first byte, what is fetched, from
where and into which cache folder, then draws one bar for the whole download: bytes so far of
the expected total, speed and time left. The bar watches the repository's cache folder grow
(the hub writes each file there as `<blob>.incomplete` while it arrives), so it needs nothing
from the download's internals; the total is the size the hub lists for the files diffusers
will fetch (its weights in safetensors, of the requested variant).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

# Name infixes of weight variants: `diffusion_pytorch_model.fp16.safetensors`.
_VARIANT_INFIXES = {"fp16", "bf16", "fp32", "fp8", "ema", "non_ema"}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".h5", ".gguf")


def is_cached(repo: str, revision: str | None, variant: str | None, allow_pickle: bool) -> Path | None:
    """The cached snapshot folder when every file diffusers needs is already there."""
    from diffusers import DiffusionPipeline

    try:
        folder = DiffusionPipeline.download(
            repo, revision=revision, variant=variant, use_safetensors=not allow_pickle, local_files_only=True
        )
    except Exception:  # not cached, or only partly: the download below completes it
        return None
    return Path(folder)


def expected_bytes(repo: str, revision: str | None, variant: str | None) -> int | None:
    """What the download should add up to, from the hub's file list and the repository's
    model_index.json (its component folders, as diffusers reads them); None when unknown."""
    import json

    from huggingface_hub import HfApi, hf_hub_download

    try:
        info = HfApi().model_info(repo, revision=revision, files_metadata=True)
        index = json.loads(Path(hf_hub_download(repo, "model_index.json", revision=revision)).read_text())
    except Exception:
        return None
    components = {name for name, value in index.items() if isinstance(value, list) and value[0]}
    total = 0
    for sibling in info.siblings or []:
        name, size = sibling.rfilename, sibling.size or 0
        folder, _, file = name.rpartition("/")
        if folder == "" and not name.endswith(".json"):
            continue  # top level: only model_index.json and configs (not single-file checkpoints)
        if folder and (folder not in components or "/" in folder):
            continue
        if file.endswith(_WEIGHT_SUFFIXES) and (
            not file.endswith(".safetensors") or _variant_of(file) != variant
        ):
            continue
        total += size
    return total or None


def _variant_of(name: str) -> str | None:
    parts = Path(name).name.split(".")
    return parts[-2] if len(parts) >= 3 and parts[-2] in _VARIANT_INFIXES else None


def _folder_bytes(folder: Path) -> int:
    try:
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    except OSError:  # a file renamed between listing and stat: counted on the next poll
        return 0


class DownloadProgress:
    """One tqdm bar on stderr, fed by polling the repository's blob folder once a second."""

    def __init__(self, cache_folder: Path, label: str, total: int | None, interval: float = 1.0):
        from tqdm import tqdm

        self.blobs = cache_folder / "blobs"
        self.start = _folder_bytes(self.blobs)
        self.interval = interval
        self.bar = tqdm(
            total=total,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            mininterval=interval,
            dynamic_ncols=True,
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        done = max(0, _folder_bytes(self.blobs) - self.start)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def __enter__(self) -> DownloadProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll()
        self.bar.close()


def fetch_hub_model(repo: str, revision: str | None, variant: str | None, allow_pickle: bool) -> Path:
    """The snapshot folder of `repo`: the cached one at once, else downloaded now, visibly.
    Errors propagate (the caller words them)."""
    from diffusers import DiffusionPipeline
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    cached = is_cached(repo, revision, variant, allow_pickle)
    if cached is not None:
        return cached
    cache_folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model")
    total = None if constants.HF_HUB_OFFLINE else expected_bytes(repo, revision, variant)
    if total is None:  # offline, or the hub does not answer: the download's own error says why
        return Path(
            DiffusionPipeline.download(
                repo, revision=revision, variant=variant, use_safetensors=not allow_pickle
            )
        )
    size = f"{total / 1e9:.1f} GB" if total >= 1e8 else f"{total / 1e6:.1f} MB"
    print(
        f"downloading base model {repo}{f' (revision {revision})' if revision else ''} from "
        f"{constants.ENDPOINT} ({size}) into the Hugging Face cache {cache_folder}; "
        "later runs use the cached copy",
        file=sys.stderr,
        flush=True,
    )
    with DownloadProgress(cache_folder, f"downloading {repo}", total):
        folder = DiffusionPipeline.download(
            repo, revision=revision, variant=variant, use_safetensors=not allow_pickle
        )
    return Path(folder)
