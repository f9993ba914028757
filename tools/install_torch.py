"""Install the locked torch release as the CPU build on a machine without an NVIDIA GPU.

A plain `pip install torch==X` on Linux resolves to the CUDA build, which pulls about 15
nvidia/triton wheels (several GB) that a machine without a GPU never uses. PyTorch's CPU
wheel index has the same release built for the CPU. So, without `nvidia-smi` on the PATH:

1. torch alone (`--no-deps`) from the CPU index (its dependencies come from the ordinary
   index with the rest of the install, exactly as the lock pins them);
2. if that index cannot be reached or lacks the release (a proxy that allows only PyPI, an
   offline mirror), the plain name from pip's configured sources, saying so: a local CPU wheel
   there (find-links, a mirror) is taken, otherwise pip's default build for the platform.

With a GPU the plain name is installed: the CUDA build of the locked release.

Run by `make setup` (and `make lock`, with `--unlocked`):
`python tools/install_torch.py [--cpu-index URL] [--requirement SPEC] [PIP_ARGS...]`
(PIP_ARGS go to every pip call, e.g. `--dry-run`). `TORCH_ARGS=...` on make's command
line replaces this script with a pip call of your own.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
# An index that is down or filtered should cost seconds, not pip's default retries.
QUICK_FAILURE = ["--timeout", "15", "--retries", "1"]


def locked_torch(lock: Path = LOCK) -> str:
    """`torch==X` as the lock pins it (the lock is the one place the release is named)."""
    match = re.search(r"^torch==(\S+)", lock.read_text(), flags=re.MULTILINE)
    if match is None:
        raise SystemExit(f"error: {lock}: no torch==X pin")
    return f"torch=={match.group(1)}"


def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None


def pip(args: list[str]) -> int:
    command = [sys.executable, "-m", "pip", "install", *args]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    return subprocess.run(command).returncode


def install(requirement: str, cpu_index: str, pip_args: list[str], lock: Path | None = LOCK) -> int:
    """Returns pip's exit status: the CPU index first (no GPU), else or then the plain name."""
    plain = (["-c", str(lock)] if lock else []) + [requirement, *pip_args]
    if has_nvidia_gpu():
        print(f"NVIDIA GPU found: installing {requirement} (the CUDA build)", file=sys.stderr)
        return pip(plain)
    print(f"no NVIDIA GPU: installing {requirement} from the CPU wheel index {cpu_index}", file=sys.stderr)
    if pip(["--no-deps", "--index-url", cpu_index, *QUICK_FAILURE, requirement, *pip_args]) == 0:
        return 0
    print(
        f"the CPU wheel index {cpu_index} did not serve {requirement}; falling back to pip's "
        "configured sources (a CPU wheel there is taken; otherwise pip's default build, "
        "which on Linux is the CUDA one)",
        file=sys.stderr,
    )
    return pip(plain)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-index", default=CPU_INDEX, help=f"PyTorch's CPU wheel index ({CPU_INDEX})")
    parser.add_argument("--requirement", default=None, help="default: torch==X as requirements.lock pins it")
    parser.add_argument(
        "--unlocked", action="store_true", help="the newest torch, without the lock (`make lock`)"
    )
    args, pip_args = parser.parse_known_args(argv)
    if args.unlocked:
        return install(args.requirement or "torch", args.cpu_index, pip_args, lock=None)
    return install(args.requirement or locked_torch(), args.cpu_index, pip_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
