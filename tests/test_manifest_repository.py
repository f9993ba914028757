"""The manifest repository on a real SQLite file and a real PostgreSQL server (started here).

Each signed image's stripped copy resolves to exactly its own manifest; unsigned photos match
nothing; identifiers stay unique per key across signers; a signer killed mid-write leaves
the database consistent and the next run settles it; old folder stores import once.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import update

from headshot.errors import HeadshotError
from headshot.samples import grace_hopper
from headshot.signing import store
from headshot.signing.config import SigningConfig
from headshot.signing.credentials import create_dev_credentials
from headshot.signing.repository import lookup, open_store
from headshot.signing.sign import sign_image
from headshot.signing.store_legacy import import_folder
from headshot.signing.store_schema import schema_version
from headshot.signing.verify import verify_bytes
from headshot.signing.watermark_payload import key_id
from tests.generate_support import subprocess_env
from tests.service_support import plain_photos, postgres_server, stripped_copy

KEY = key_id(SigningConfig().watermark.key)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def signed(request, tmp_path_factory):
    """Two headshots signed into a fresh repository of each kind: (config, [SignedImage])."""
    root = tmp_path_factory.mktemp(f"repo-{request.param}")
    keys = create_dev_credentials(root / "keys")
    with postgres_server() if request.param == "postgresql" else _sqlite(root) as url:
        config = SigningConfig(
            cert_chain=keys.cert_chain, private_key=keys.private_key, manifest_store=root / "ms", store=url
        )
        portrait = grace_hopper()
        images = [
            sign_image(portrait.crop(box).resize((384, 384)), root / f"h{i}.jpg", None, config)
            for i, box in enumerate([(0, 44, 512, 556), (20, 60, 480, 520)])
        ]
        yield config, images


class _sqlite:
    def __init__(self, root: Path):
        self.url = f"sqlite:///{root / 'repository.sqlite'}"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc) -> None:
        return None


def test_each_stripped_copy_resolves_to_exactly_its_own_manifest(signed):
    config, images = signed
    repository = open_store(config)
    copy = verify_bytes(stripped_copy(images[1].path), "copy.jpg", config)
    assert copy.state == "Absent" and copy.watermark.identifier == images[1].watermark_id
    assert copy.manifest_store.found and copy.manifest_store.entry == images[1].manifest_label
    assert copy.manifest_store.manifest.signature_valid and copy.manifest_store.manifest.ai_generated
    for image in images:
        (entry,) = repository.find_by_binding(KEY, image.watermark_id)
        assert entry.manifest_id == image.manifest_label and entry.sha256 == image.sha256
        assert repository.fetch(image.manifest_label).manifest == entry.manifest
    assert repository.fetch("urn:c2pa:00000000-0000-0000-0000-000000000000") is None
    assert repository.find_by_binding(KEY, "'; DROP TABLE headshot_manifests; --") == []
    assert repository.count() == 2  # parameterised: the query text above was only a value


def test_unsigned_photos_plain_and_edited_match_nothing(signing_config_sqlite):
    for photo in plain_photos():
        plain = verify_bytes(photo, "photo.jpg", signing_config_sqlite)
        assert not plain.watermark.found and plain.manifest_store is None and not plain.ai_generated


@pytest.fixture
def signing_config_sqlite(tmp_path):
    return SigningConfig(manifest_store=tmp_path / "ms", dev_credentials=tmp_path / "keys")


def test_identifiers_stay_unique_per_key_across_signers(signed, monkeypatch):
    config, images = signed
    repository = open_store(config)
    taken = images[0].watermark_id
    draws = iter([taken, taken, "0badc0de"])  # another signer holds `taken`: draw again
    monkeypatch.setattr(store.secrets, "token_hex", lambda n: next(draws))
    assert repository.reserve_identifier(KEY, "alg", Path("x.jpg")) == "0badc0de"
    monkeypatch.undo()
    repository.abort_entry(KEY, "0badc0de")
    # Several signers at once (threads with their own connections): every reservation unique.
    reserved: list[str] = []
    lock = threading.Lock()

    def signer() -> None:
        mine = [repository.reserve_identifier(KEY, "alg", Path("y.jpg")) for _ in range(6)]
        with lock:
            reserved.extend(mine)

    threads = [threading.Thread(target=signer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(reserved)) == 24 and not set(reserved) & {i.watermark_id for i in images}
    assert all(repository.find_by_binding(KEY, identifier) == [] for identifier in reserved[:5])
    for identifier in reserved:
        repository.abort_entry(KEY, identifier)


_CHILD = """
import os, signal, sys
from pathlib import Path
from headshot.signing.store import ManifestStore
repository = ManifestStore(sys.argv[1])
identifier = repository.reserve_identifier(sys.argv[2], "alg", Path(sys.argv[3]))
repository.save_entry(sys.argv[2], identifier, None, b"partial", {"sha256": "0" * 64})
print(identifier, flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # kill -9 between the entry and its image
"""


def test_a_signer_killed_mid_write_leaves_the_database_consistent(signed, tmp_path):
    """A child writing through the repository itself, on both databases (tests/test_faults_sign.py
    also kills a whole `headshot sign` on SQLite)."""
    config, images = signed
    repository = open_store(config)
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, repository.url, KEY, str(tmp_path / "never.jpg")],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    orphan = child.stdout.strip()
    assert repository.find_by_binding(KEY, orphan) == []  # pending: never found
    assert repository.recover() == 1  # its image was never written: removed
    assert repository.count() == len(images)
    for image in images:  # earlier entries untouched
        assert repository.find_by_binding(KEY, image.watermark_id)[0].sha256 == image.sha256


def test_an_old_folder_store_is_imported_once_and_idempotently(signed, tmp_path):
    config, images = signed
    entry = open_store(config).find_by_binding(KEY, images[0].watermark_id)[0]
    folder = tmp_path / "manifest-store"
    folder.mkdir()
    (folder / "0ddba115.json").write_text(json.dumps({**entry.summary, "watermark_id": "0ddba115"}))
    (folder / "0ddba115.c2pa").write_bytes(entry.manifest)
    (folder / "feedf00d.json").write_text("{not json")  # damaged: skipped, never trusted
    target = store.ManifestStore(f"sqlite:///{tmp_path / 'imported.sqlite'}")
    assert import_folder(target, folder, SigningConfig().watermark.key) == (1, 1)
    assert import_folder(target, folder, SigningConfig().watermark.key) == (0, 2)
    (found,) = target.find_by_binding(KEY, "0ddba115")
    assert found.manifest_id == entry.manifest_id and found.manifest == entry.manifest
    # A signing config whose manifest_store is that folder imports it by itself, once.
    automatic = SigningConfig(manifest_store=folder)
    assert lookup(automatic, "0ddba115").entry == entry.manifest_id
    assert open_store(automatic).count() == 1


def test_a_database_of_a_newer_schema_is_refused_in_one_line(tmp_path):
    repository = store.ManifestStore(f"sqlite:///{tmp_path / 'm.sqlite'}")
    repository.ensure_schema()
    with repository.engine.begin() as connection:
        connection.execute(update(schema_version).values(version=99))
    with pytest.raises(HeadshotError, match=r"m\.sqlite: manifest store schema version 99 is newer"):
        store.ManifestStore(repository.url).ensure_schema()


def test_an_unusable_store_url_is_one_line(tmp_path):
    config = SigningConfig(manifest_store=tmp_path, store="nosuchdb://x/y")
    with pytest.raises(HeadshotError, match=r"^nosuchdb://x/y: not a usable database URL"):
        open_store(config).reserve_identifier(KEY, "alg", tmp_path / "x.jpg")
