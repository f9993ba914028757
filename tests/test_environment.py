"""The environment check `make test` runs first: an inconsistent install must fail, with names."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("check_env", ROOT / "tools" / "check_env.py")
check_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_env)


def test_this_environment_is_the_locked_set():
    pins = check_env.locked_versions()
    assert {"torch", "diffusers", "transformers", "peft", "c2pa-python"} <= pins.keys()
    assert check_env.mismatches(pins) == []


def test_a_version_other_than_the_lock_is_reported_by_name(tmp_path):
    lock = tmp_path / "requirements.lock"
    peft = metadata.version("peft")
    lock.write_text(f"# comment\npeft==0.0.1\nnumpy=={metadata.version('numpy')}\nno-such-pkg==1.0\n")
    problems = check_env.mismatches(check_env.locked_versions(lock))
    assert problems == ["no-such-pkg: not installed (lock: 1.0)", f"peft: {peft} installed, lock says 0.0.1"]


def test_the_lock_pins_every_installed_distribution():
    """A package installed but absent from the lock would float on the next fresh install."""
    pins = check_env.locked_versions()
    installed = {
        check_env._normal(d.metadata["Name"]) for d in metadata.distributions() if d.metadata["Name"]
    }
    unpinned = installed - pins.keys() - {"headshot", "pip", "setuptools", "wheel"}
    assert unpinned == set()


def test_the_check_exits_1_with_the_repair_command_when_the_set_is_broken(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("peft==0.0.1\n")
    command = [sys.executable, str(ROOT / "tools" / "check_env.py"), str(lock)]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1
    assert "peft:" in result.stderr and "make clean setup" in result.stderr
