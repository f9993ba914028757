"""The command line starts fast: --help and --version never import torch, diffusers or transformers.

Importing them takes seconds (issue 25, defect 9: `headshot --help` took about 6 s). Every
command registered on the app is checked, so a new command module that imports a heavy
library at its top fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "diffusers", "transformers")

SCRIPT = """
import json, sys
import typer
from headshot.cli import app, main

def command_paths(command, prefix):
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from command_paths(sub, [*prefix, name])

runs = []
for path in command_paths(typer.main.get_command(app), []):
    for extra in (["--help"], ["-h"]):
        sys.argv = ["headshot", *path, *extra]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code
        runs.append([" ".join(path + extra), code])
sys.argv = ["headshot", "--version"]
try:
    main()
except SystemExit as exc:
    runs.append(["--version", exc.code])
print(json.dumps({"runs": runs, "heavy": sorted(name for name in %r if name in sys.modules)}))
"""


def test_help_of_every_command_and_version_import_no_heavy_library():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT % (HEAVY,)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.splitlines()[-1])
    shown = {run[0] for run in report["runs"]}
    expected = ("prepare", "finetune", "generate", "verify", "keys init")
    assert {f"{name} --help" for name in expected} <= shown
    assert all(code == 0 for _, code in report["runs"]), report["runs"]
    assert report["heavy"] == [], f"--help imported {report['heavy']}"


def test_version_prints_the_version(run_cli):
    from headshot import __version__

    result = run_cli("--version")
    assert (result.code, result.out.strip()) == (0, f"headshot {__version__}")
