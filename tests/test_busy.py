"""One run per subject at a time: a second run stops at once, naming the first; a killed run
never leaves the subject stuck."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from generate_support import generate_args, subject_copy, subprocess_env, write_template

from headshot.busy import LOCK_NAME


def _wait_for_holder(lock, process, stage: str, timeout: float = 120.0) -> dict:
    """The holder's record, once the lock file names it (it is written after the lock is taken)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        try:
            info = json.loads(lock.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if info.get("stage") == stage and info.get("pid") == process.pid:
            return info
        time.sleep(0.05)
    raise AssertionError("the first run never took the subject")


def _one_error_line(result) -> str:
    errors = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert result.code == 1 and len(errors) == 1 and "Traceback" not in result.err, result.err
    return errors[0]


def test_a_second_run_on_a_busy_subject_stops_and_names_the_first(
    run_cli, tiny_sd15, tmp_path, tmp_path_factory
):
    layout = subject_copy(tmp_path, tmp_path_factory.getbasetemp() / "pristine", tiny_sd15, "sd15")
    template = write_template(tmp_path / "templates", "busy-test", steps=2)
    # A real `headshot generate` with a long grid: it holds the subject while it renders.
    long_run = generate_args(layout, template, seeds=400, batch_size=1)
    first = subprocess.Popen(
        [sys.executable, "-m", "headshot", *long_run],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_holder(layout.root / LOCK_NAME, first, "generate")
        before = sorted(
            p.relative_to(layout.root) for p in layout.root.rglob("*") if "renders" not in p.parts
        )
        started = time.monotonic()
        for args in (
            generate_args(layout, template, seeds=1),
            ["finetune", layout.dataset, "-m", tiny_sd15],
            ["prepare", tmp_path / "photos", "-s", "ada", "--outputs", layout.root.parent],
        ):
            line = _one_error_line(run_cli(*args))
            assert f"{layout.root.resolve()}: busy: `headshot generate` (process {first.pid}" in line
        assert time.monotonic() - started < 10, "a busy subject is refused at once, not after loading"
        after = sorted(p.relative_to(layout.root) for p in layout.root.rglob("*") if "renders" not in p.parts)
        assert after == before, "the refused runs wrote nothing"
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    # The kernel released the killed run's lock: the next run goes ahead.
    result = run_cli(*generate_args(layout, template, seeds=1))
    assert result.code == 0, result.err
    assert (layout.headshots / "index.json").is_file()


def test_stages_in_one_process_share_the_lock(tmp_path):
    from headshot.busy import subject_busy

    with subject_busy(tmp_path, "run", create=True):
        with subject_busy(tmp_path, "prepare"):  # `headshot run` calls each stage in turn
            pass
    # Released: another process can take it now.
    code = "from headshot.busy import subject_busy\n"
    code += f"with subject_busy({str(tmp_path)!r}, 'prepare'): print('held')"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env()
    )
    assert result.stdout.strip() == "held", result.stderr
