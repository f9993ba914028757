"""Shared fixtures: tiny models built once per session, the sample selfies, a CLI runner."""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from flow_cases import FLOW_CASES, IDS

# Tests never reach a model hub; real loading code runs against local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs two pytest workers on two cores: one torch thread each (and in the
# subprocesses they start) avoids oversubscription, which slows tiny models 10x or more.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402  (after the thread settings above)

torch.set_num_threads(1)

# The Ctrl-C tests send SIGINT to `headshot` processes (and to this one). A shell that starts
# the tests in the background (`make test &`, nohup, some CI runners) leaves SIGINT ignored,
# which exec keeps, so Python would never raise KeyboardInterrupt; a handled signal is reset
# to its default on exec, so the processes the tests start see Ctrl-C as a terminal gives it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run `headshot ARGS...` in-process through the real entry point."""
    from headshot.cli import main

    def invoke(*args: str) -> CliResult:
        monkeypatch.setattr(sys, "argv", ["headshot", *map(str, args)])
        capsys.readouterr()
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory) -> Path:
    from headshot.training.tiny_model import save_tiny_model

    return save_tiny_model("sd15", tmp_path_factory.mktemp("models") / "tiny-sd15")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory) -> Path:
    from headshot.training.tiny_model import save_tiny_model

    return save_tiny_model("sdxl", tmp_path_factory.mktemp("models") / "tiny-sdxl")


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory) -> Path:
    from headshot.training.tiny_model import save_tiny_model

    return save_tiny_model("flux", tmp_path_factory.mktemp("models") / "tiny-flux")


@pytest.fixture(scope="session")
def tiny_flux2_klein(tmp_path_factory) -> Path:
    from headshot.training.tiny_model import save_tiny_model

    return save_tiny_model("flux2-klein", tmp_path_factory.mktemp("models") / "tiny-flux2-klein")


@pytest.fixture(scope="module", params=FLOW_CASES, ids=IDS)
def flow_case(request):
    """Each flow-matching family's case (tests/flow_cases.py), for the tests/test_flow_*.py suite."""
    return request.param


@pytest.fixture(scope="module")
def flow_model(flow_case, request) -> Path:
    """The flow case's tiny model."""
    return request.getfixturevalue(flow_case.fixture)


@pytest.fixture(scope="session")
def sample_selfies(tmp_path_factory) -> Path:
    from headshot.samples import make_sample_selfies

    folder = tmp_path_factory.mktemp("selfies")
    make_sample_selfies(folder)
    return folder
