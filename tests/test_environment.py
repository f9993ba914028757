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
    pins = check_env.locked_versions(lock)
    problems = check_env.mismatches(pins, check_env.asked_for(set()) | {"no-such-pkg"})
    assert problems == ["no-such-pkg: not installed (lock: 1.0)", f"peft: {peft} installed, lock says 0.0.1"]
    # A locked package nobody asked for (a dev tool the GPU-box install leaves out) may be absent.
    assert check_env.mismatches(pins, check_env.asked_for(set())) == [
        f"peft: {peft} installed, lock says 0.0.1"
    ]


def test_the_lock_pins_every_installed_distribution():
    """A package installed but absent from the lock would float on the next fresh install."""
    pins = check_env.locked_versions()
    import sysconfig

    # The environment's own site-packages: a library that puts another interpreter's folder on
    # sys.path while the suite runs must not make that folder's packages count as installed here.
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    installed = {
        check_env._normal(d.metadata["Name"]) for d in metadata.distributions(path=site) if d.metadata["Name"]
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


def _dist_info(site: Path, name: str, version: str, *requires: str) -> None:
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {requirement}" for requirement in requires]
    (folder / "METADATA").write_text("\n".join(lines) + "\n")


def test_the_check_asks_only_for_what_the_install_asked_for(tmp_path):
    """A site laid out as pip lays it out: headshot needs a-pkg and b-pkg[x], b-pkg's extra x
    needs c-pkg; pytest-like dev-tool only with the dev extra."""
    site = tmp_path / "site"
    _dist_info(site, "headshot", "0.1", "a-pkg>=1", "b-pkg[x]", 'dev-tool; extra == "dev"')
    _dist_info(site, "a-pkg", "1.0")
    _dist_info(site, "b-pkg", "2.0", 'c-pkg; extra == "x"', 'unused-pkg; extra == "y"')
    _dist_info(site, "c-pkg", "3.0")
    path = [str(site)]
    assert check_env.asked_for(set(), path) == {"headshot", "a-pkg", "b-pkg", "c-pkg"}
    assert check_env.asked_for({"dev"}, path) == {"headshot", "a-pkg", "b-pkg", "c-pkg", "dev-tool"}
    pins = {"a-pkg": "1.0", "b-pkg": "2.0", "c-pkg": "3.0", "dev-tool": "1.0", "unused-pkg": "1.0"}
    assert check_env.mismatches(pins, check_env.asked_for(set(), path), path) == []
    asked = check_env.asked_for({"dev"}, path)
    assert check_env.mismatches(pins, asked, path) == ["dev-tool: not installed (lock: 1.0)"]
    (site / "c_pkg-3.0.dist-info" / "METADATA").unlink()
    (site / "c_pkg-3.0.dist-info").rmdir()
    assert check_env.mismatches(pins, check_env.asked_for(set(), path), path) == [
        "c-pkg: not installed (lock: 3.0)"
    ]


def test_the_gpu_box_recipe_passes_without_the_dev_tools_make_setup_requires(tmp_path):
    """The GPU-box recipe installs `-e .` only: locked dev tools it lacks are not errors there."""
    lock = tmp_path / "requirements.lock"
    lock.write_text(check_env.LOCK.read_text() + "no-such-dev-tool==1.0\n")
    pins = check_env.locked_versions(lock)
    assert check_env.mismatches(pins, check_env.asked_for(set())) == []
    # make setup and make test check with --extras dev,heic,quant: there the dev tools are required.
    assert {"pytest", "ruff", "pillow-heif", "torchao"} <= check_env.asked_for({"dev", "heic", "quant"})
    assert check_env.mismatches(pins, check_env.asked_for({"dev"}) | {"no-such-dev-tool"}) == [
        "no-such-dev-tool: not installed (lock: 1.0)"
    ]
