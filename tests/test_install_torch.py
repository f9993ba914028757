"""`make setup`'s torch install: the CPU wheel index first, the plain name when it fails.

Real pip against real indexes on this machine: a local HTTP server plays PyTorch's CPU
index, a file:// folder plays pip's configured index, and a tiny wheel built here plays
torch (installed with `--target` into a temporary folder; the venv is not touched). pip's
own configuration is switched off so only these sources exist.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "headshot-probe-torch"
MODULE = "headshot_probe_torch"


def build_wheel(folder: Path, version: str) -> Path:
    """A minimal pure-Python wheel of PACKAGE at `version` (e.g. 1.0 or 1.0+cpu)."""
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{MODULE}-{version}-py3-none-any.whl"
    info = f"{MODULE}-{version}.dist-info"
    files = {
        f"{MODULE}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{info}/RECORD", "".join(f"{name},,\n" for name in files) + f"{info}/RECORD,,\n")
    return wheel


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def plain_index(tmp_path) -> str:
    """pip's configured index (a PEP 503 folder): the release without the CPU label."""
    wheel = build_wheel(tmp_path / "plain" / PACKAGE, "1.0")
    (wheel.parent / "index.html").write_text(f'<a href="{wheel.name}">{wheel.name}</a>\n')
    return (tmp_path / "plain").as_uri()


@pytest.fixture
def cpu_index(tmp_path):
    """PyTorch's CPU index, served over HTTP on 127.0.0.1: the same release labelled +cpu."""
    build_wheel(tmp_path / "cpu" / PACKAGE, "1.0+cpu")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path / "cpu"))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def run_installer(
    tmp_path: Path, cpu_index: str, plain_index: str
) -> tuple[subprocess.CompletedProcess, str]:
    target = tmp_path / "site"
    no_gpu = tmp_path / "bin"  # a PATH without nvidia-smi
    no_gpu.mkdir()
    env = {
        "PATH": str(no_gpu),
        "HOME": str(tmp_path),
        "PIP_CONFIG_FILE": os.devnull,  # no site, user or workplace pip configuration
        "PIP_INDEX_URL": plain_index,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    command = [sys.executable, str(ROOT / "tools" / "install_torch.py"), "--cpu-index", cpu_index]
    command += ["--requirement", f"{PACKAGE}==1.0", "--target", str(target), "--quiet"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    versions = [p.name for p in target.glob(f"{MODULE}-*.dist-info")] if target.is_dir() else []
    return result, ",".join(versions)


def test_the_cpu_index_is_tried_first_and_its_build_taken(tmp_path, cpu_index, plain_index):
    result, installed = run_installer(tmp_path, cpu_index, plain_index)
    assert result.returncode == 0, result.stderr
    assert installed == f"{MODULE}-1.0+cpu.dist-info"
    assert f"--index-url {cpu_index}" in result.stderr and "falling back" not in result.stderr


def test_an_unreachable_cpu_index_falls_back_to_the_plain_name(tmp_path, plain_index):
    unreachable = f"http://127.0.0.1:{closed_port()}/"
    result, installed = run_installer(tmp_path, unreachable, plain_index)
    assert result.returncode == 0, result.stderr
    assert installed == f"{MODULE}-1.0.dist-info"
    assert f"the CPU wheel index {unreachable} did not serve {PACKAGE}==1.0; falling back" in result.stderr


def test_make_setup_installs_torch_through_the_installer_and_the_lock_names_the_release():
    spec = importlib.util.spec_from_file_location("install_torch", ROOT / "tools" / "install_torch.py")
    install_torch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(install_torch)
    assert install_torch.locked_torch().startswith("torch==2.")
    dry = subprocess.run(["make", "-n", "-B", "setup"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "tools/install_torch.py" in dry.stdout
