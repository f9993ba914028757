"""Fail fast, before any test, when the virtual environment is not the locked, consistent set.

Run by `make setup` and `make test` (`python tools/check_env.py [--extras dev,heic,quant] [LOCK]`):
`pip check` catches broken requirements (a package whose dependency is missing or at a version
it refuses); the comparison with requirements.lock catches a package upgraded or downgraded by
hand. Either prints what is wrong and how to repair it.

The lock pins every package of the full development install, but an install asks for fewer:
the GPU-box recipe (`pip install -c requirements.lock -e .`) has no pytest or ruff. So a
locked package that is not installed is missing only when the install asks for it: headshot's
requirements with the extras named by `--extras`, and theirs, recursively. Every locked
package that is installed must be at the locked version, asked for or not.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        match = _PIN.match(line.strip())
        if match:
            pins[_normal(match.group(1))] = match.group(2)
    return pins


def _installed(name: str, path: list[str] | None) -> metadata.Distribution | None:
    where = {"path": path} if path is not None else {}  # None: sys.path
    return next(iter(metadata.distributions(name=name, **where)), None)


def asked_for(extras: set[str], path: list[str] | None = None, root: str = "headshot") -> set[str]:
    """Every distribution `pip install -e .[extras]` installs: `root`'s requirements with those
    extras, and theirs (with the extras each asks for), as the installed metadata says."""
    from packaging.requirements import Requirement

    wanted, queue = {_normal(root)}, [(root, frozenset(extras))]
    while queue:
        name, chosen = queue.pop()
        distribution = _installed(name, path)
        if distribution is None:
            continue  # reported as not installed when it is locked; pip check names it too
        for line in distribution.requires or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": e}) for e in chosen | {""}):
                continue
            key = (_normal(requirement.name), frozenset(requirement.extras))
            if key[0] not in wanted or requirement.extras:
                wanted.add(key[0])
                queue.append((requirement.name, key[1]))
    return wanted


def mismatches(
    pins: dict[str, str], wanted: set[str] | None = None, path: list[str] | None = None
) -> list[str]:
    """Locked packages at another version, and those `wanted` (default: all) not installed."""
    problems = []
    for name, wanted_version in sorted(pins.items()):
        distribution = _installed(name, path)
        if distribution is None:
            if wanted is None or name in wanted:
                problems.append(f"{name}: not installed (lock: {wanted_version})")
            continue
        have = distribution.version
        if have.split("+")[0] != wanted_version.split("+")[0]:
            problems.append(f"{name}: {have} installed, lock says {wanted_version}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", nargs="?", type=Path, default=LOCK)
    parser.add_argument("--extras", default="", help="headshot's extras the install asked for (dev,heic,...)")
    args = parser.parse_args(argv)
    lock, extras = args.lock, {e.strip() for e in args.extras.split(",") if e.strip()}
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = []
    if check.returncode != 0:
        problems += ["pip check: " + line for line in check.stdout.splitlines() if line.strip()]
    pins = locked_versions(lock)
    wanted = asked_for(extras)
    if _installed("headshot", None) is None:
        problems.append("headshot: not installed (pip install -c requirements.lock -e .)")
    problems += mismatches(pins, wanted)
    if problems:
        print("error: the environment is not the locked, consistent set:", file=sys.stderr)
        for line in problems[:20]:
            print(f"  {line}", file=sys.stderr)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more", file=sys.stderr)
        print("Repair it with `make clean setup` (reinstalls from requirements.lock).", file=sys.stderr)
        return 1
    skipped = sorted(name for name in pins if name not in wanted and _installed(name, None) is None)
    note = (
        f" ({len(skipped)} locked ones this install does not ask for: {', '.join(skipped)})"
        if skipped
        else ""
    )
    print(
        f"environment: {len(pins) - len(skipped)} locked packages installed as locked{note}, pip check passed"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
