"""Faults during `headshot sign`: name clashes, kills, a full disk, read-only folders, the keys folder.

A manifest repository entry exists only for an image that was written: a failed or killed
write removes it (at once, or on the next run).
"""

from __future__ import annotations

import os
import stat

import pytest

from headshot.samples import grace_hopper
from tests.fault_support import (
    assert_killed,
    assert_one_line_error,
    full_disk,
    leftovers,
    read_only,
    run_headshot,
    snapshot,
    store_entries,
)


@pytest.fixture
def setup(tmp_path):
    """Two source images named x.png in two folders, and a signing config with its own store."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        grace_hopper().resize((128, 128)).save(tmp_path / folder / "x.png")
    config = tmp_path / "signing.yaml"
    config.write_text(f"dev_credentials: {tmp_path / 'keys'}\nmanifest_store: {tmp_path / 'store'}\n")
    return tmp_path, config


def test_two_sources_with_one_destination_are_an_error_naming_both(setup, run_cli):
    """Issue 11, case 3: `sign a/x.png b/x.png --out D` wrote one file."""
    root, config = setup
    result = run_cli(
        "sign", root / "a" / "x.png", root / "b" / "x.png", "--out", root / "D", "--config", config
    )
    assert result.code == 1
    assert_one_line_error(result.err, str(root / "a" / "x.png"), str(root / "b" / "x.png"))
    assert not (root / "D").exists() and not store_entries(root / "store")


@pytest.mark.parametrize("point", ["kill:store:reserve", "kill:store:save", "kill:x.png"])
def test_a_kill_while_signing_leaves_no_orphan_entry_after_the_next_run(setup, run_cli, point):
    """kill -9 of a signer mid-write: the database stays consistent (integrity_check), the
    killed run's pending row is settled by the next run, earlier entries are untouched."""
    root, config = setup
    out = root / "D"
    assert (
        run_cli("sign", root / "a" / "x.png", "--out", out, "--config", config).code == 0
    )  # also makes keys
    before_out, before_store = snapshot(out), store_entries(root / "store")
    assert_killed(run_headshot("sign", root / "a" / "x.png", "--out", out, "--config", config, fault=point))
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(".")} == before_out
    assert store_entries(root / "store") == before_store  # a pending row is never found
    # The next run (any sign) settles the store: the killed run's entry had no image.
    assert run_cli("sign", root / "a" / "x.png", "--out", out, "--config", config).code == 0
    store = store_entries(root / "store")
    assert {k: v for k, v in store.items() if k in before_store} == before_store
    assert len(store) == 2  # the first and the last run's
    assert store_entries(root / "store", "pending") == {}
    assert leftovers(root / "store") == [] and leftovers(out) == []


def test_a_full_disk_writes_no_image_and_keeps_no_entry(setup, run_cli, monkeypatch):
    """Issue 11, case 4: on a full disk the image was not written but its store entry stayed."""
    root, config = setup
    out = root / "small"
    with full_disk(out, 16, monkeypatch, "x.png"):
        result = run_cli("sign", root / "a" / "x.png", "--out", out, "--config", config)
        assert result.code == 1
        assert_one_line_error(result.err, str(out / "x.png"), "No space left on device")
        assert leftovers(out) == [] and not (out / "x.png").exists()
    assert not store_entries(root / "store") and not store_entries(root / "store", "pending")
    assert leftovers(root / "store") == []


def test_read_only_output_and_store_folders_are_blamed_correctly(setup, run_cli):
    root, config = setup
    assert run_cli("sign", root / "a" / "x.png", "--out", root / "D", "--config", config).code == 0
    with read_only(root / "store"):
        result = run_cli("sign", root / "b" / "x.png", "--out", root / "E", "--config", config)
    assert result.code == 1
    database = root / "store" / "manifests.sqlite"
    assert_one_line_error(result.err, f"{database}: cannot write to the manifest store")
    assert not (root / "E" / "x.png").exists()
    before = store_entries(root / "store")
    with read_only(root / "D"):
        result = run_cli("sign", root / "b" / "x.png", "--out", root / "D", "--config", config)
    assert result.code == 1
    assert_one_line_error(result.err, str(root / "D" / "x.png"))
    assert store_entries(root / "store") == before, "no entry for the image that could not be written"
    assert store_entries(root / "store", "pending") == {}


def test_the_keys_folder_is_private_whatever_the_umask(tmp_path, run_cli):
    old = os.umask(0)
    try:
        result = run_cli("keys", "init", "--out", tmp_path / "keys")
    finally:
        os.umask(old)
    assert result.code == 0, result.err
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / "dev-signer-key.pem").stat().st_mode) == 0o600
