"""Fail fast, before any test, when the virtual environment is not the locked, consistent set.

Run by `make test` (`python tools/check_env.py [LOCK]`): `pip check` catches broken
requirements (a package whose dependency is missing or at a version it refuses); the comparison with
requirements.lock catches a package upgraded or downgraded by hand.
Either prints what is wrong and how to repair it.
"""

from __future__ import annotations

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


def mismatches(pins: dict[str, str]) -> list[str]:
    problems = []
    for name, wanted in sorted(pins.items()):
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}: not installed (lock: {wanted})")
            continue
        if have.split("+")[0] != wanted.split("+")[0]:
            problems.append(f"{name}: {have} installed, lock says {wanted}")
    return problems


def main(argv: list[str]) -> int:
    lock = Path(argv[0]) if argv else LOCK
    check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    problems = []
    if check.returncode != 0:
        problems += ["pip check: " + line for line in check.stdout.splitlines() if line.strip()]
    problems += mismatches(locked_versions(lock))
    if problems:
        print("error: the environment is not the locked, consistent set:", file=sys.stderr)
        for line in problems[:20]:
            print(f"  {line}", file=sys.stderr)
        if len(problems) > 20:
            print(f"  ... and {len(problems) - 20} more", file=sys.stderr)
        print("Repair it with `make clean setup` (reinstalls from requirements.lock).", file=sys.stderr)
        return 1
    print(f"environment: {len(locked_versions(lock))} locked packages installed, pip check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
