"""The subject's photos in a manifest: keyed commitments that the studio can check and
outsiders cannot, and the check results a viewer reads with `headshot verify`."""

# ruff: noqa: F811  (pytest fixtures imported from signing_support are parameters here)
from __future__ import annotations

import io
import json

import c2pa
import pytest
from signing_support import dev_keys, generation_info, portrait, signing_config  # noqa: F401  (fixtures)

from headshot.samples import astronaut, grace_hopper
from headshot.signing import commitments
from headshot.signing.config import load_signing_config
from headshot.signing.credentials import resolve_credentials
from headshot.signing.generation_info import AuditCheck, CheckResults, LikenessCheck
from headshot.signing.manifest import manifest_definition
from headshot.signing.sign import c2pa_sign, encode_with_xmp, sign_image
from headshot.signing.verify import verify_file


@pytest.fixture(scope="module")
def subject(tmp_path_factory):
    """A subject folder with its secret, two real training photos and one that was not used."""
    root = tmp_path_factory.mktemp("outputs") / "hopper"
    photos = tmp_path_factory.mktemp("photos")
    hopper = grace_hopper()
    used = [photos / "hopper-a.jpg", photos / "hopper-b.png"]
    hopper.save(used[0], quality=90)
    hopper.rotate(5).save(used[1])
    unused = photos / "astronaut.jpg"
    astronaut().save(unused, quality=90)
    secret = commitments.load_or_create_secret(commitments.secret_path(root))
    return root, secret, used, unused


def _sign(subject, info, portrait, config, path):
    _, secret, used, _ = subject
    photos = commitments.commit_photos(secret, [commitments.photo_sha256(p) for p in used])
    return sign_image(
        portrait.resize((256, 256)), path, info.model_copy(update={"subject_photos": photos}), config
    )


def _manifest(path):
    with c2pa.Reader("image/jpeg", io.BytesIO(path.read_bytes())) as reader:
        return reader.get_active_manifest()


def test_the_secret_is_private_created_once_and_never_replaced(subject):
    root, secret, _, _ = subject
    path = commitments.secret_path(root)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert commitments.load_or_create_secret(path) == secret  # a second run reads the same one


def test_an_outsider_with_the_photos_learns_nothing_and_two_headshots_are_unlinked(
    subject,
    generation_info,
    portrait,
    signing_config,
    tmp_path,
):
    _, secret, used, _ = subject
    first = _sign(subject, generation_info, portrait, signing_config, tmp_path / "one.jpg")
    second = _sign(subject, generation_info, portrait, signing_config, tmp_path / "two.jpg")
    for signed in (first, second):
        data = signed.path.read_bytes()
        for photo in used:  # neither the photos' plain hashes nor the secret is in the file
            assert commitments.photo_sha256(photo).encode() not in data
        assert secret.hex().encode() not in data
    ids = [{i["instance_id"] for i in _manifest(s.path)["ingredients"]} for s in (first, second)]
    assert len(ids[0]) == 2 and not ids[0] & ids[1], "the same photos must not give the same ingredients"


@pytest.fixture()
def headshot(subject, generation_info, portrait, signing_config, tmp_path):
    """A headshot signed with commitments to the subject's two training photos."""
    return _sign(subject, generation_info, portrait, signing_config, tmp_path / "h.jpg").path


def test_check_photo_proves_which_photos_trained_a_headshot(subject, headshot, tmp_path, run_cli):
    root, _, used, unused = subject
    result = run_cli("check-photo", headshot, *used, "--subject", root)
    assert result.code == 0, result.out + result.err
    assert all(f"{p}: used to train this headshot" in result.out for p in used)
    result = run_cli("check-photo", headshot, used[0], unused, "--subject", root)
    assert result.code == 1 and f"{unused}: NOT one of this headshot's training photos" in result.out
    # The same photo re-saved (other bytes) is not the photo the subject handed over.
    resaved = tmp_path / "resaved.jpg"
    grace_hopper().save(resaved, quality=80)
    assert run_cli("check-photo", headshot, resaved, "--subject", root).code == 1


def test_check_photo_refuses_a_wrong_secret_a_changed_file_and_a_missing_one(
    subject, headshot, tmp_path, run_cli
):
    root, _, used, _ = subject
    other = tmp_path / "other-subject"
    commitments.load_or_create_secret(commitments.secret_path(other))
    result = run_cli("check-photo", headshot, used[0], "--subject", other)
    assert (
        result.code == 1 and "not the secret this headshot's photo commitments were made with" in result.err
    )
    assert "Traceback" not in result.err
    data = bytearray(headshot.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a pixel byte changed after signing
    changed = tmp_path / "changed.jpg"
    changed.write_bytes(bytes(data))
    result = run_cli("check-photo", changed, used[0], "--subject", root)
    assert result.code == 1 and "does not validate" in result.err and "proves nothing" in result.err
    result = run_cli("check-photo", headshot, used[0])
    assert result.code == 1 and "give --subject" in result.err
    result = run_cli("check-photo", headshot, tmp_path / "nope.jpg", "--subject", root)
    assert result.code == 1 and "nope.jpg: cannot read the photo" in result.err


def test_headshots_signed_with_plain_hashes_before_2026_12_are_still_checked(
    subject,
    portrait,
    signing_config,
    tmp_path,
    run_cli,
):
    _, _, used, unused = subject
    definition = manifest_definition("old.jpg", "image/jpeg", None, signing_config, None)
    definition["ingredients"] = [
        {
            "title": "subject photo 1",
            "relationship": "inputTo",
            "instance_id": f"sha256:{commitments.photo_sha256(used[0])}",
        }
    ]
    asset = encode_with_xmp(portrait.resize((128, 128)), ".jpg", signing_config)
    signed, _ = c2pa_sign(
        definition, "image/jpeg", asset, resolve_credentials(signing_config), signing_config
    )
    old = tmp_path / "old.jpg"
    old.write_bytes(signed)
    assert run_cli("check-photo", old, used[0]).code == 0  # no secret needed for plain hashes
    assert run_cli("check-photo", old, unused).code == 1


def test_verify_shows_the_checks_a_headshot_passed(
    generation_info, portrait, signing_config, tmp_path, run_cli
):
    checks = CheckResults(
        metrics_version=1,
        likeness=LikenessCheck(relative_distance=0.81, threshold=1.5, same_person=True),
        audit=AuditCheck(
            status="ok",
            flags=["plastic_skin"],
            z={"skin_texture": -3.2},
            artifact_score=2.1,
            policy="fallback",
        ),
    )
    info = generation_info.model_copy(update={"checks": checks})
    signed = sign_image(portrait.resize((256, 256)), tmp_path / "checked.jpg", info, signing_config)
    result = verify_file(signed.path, signing_config)
    assert result.state == "Valid" and result.checks["likeness"]["relative_distance"] == 0.81
    assert result.checks["audit"]["z"] == {"skin_texture": -3.2} and result.checks["metrics_version"] == 1
    assert "embedding" not in json.dumps(result.checks).replace("face embedding", "")
    config = tmp_path / "signing.yaml"
    config.write_text(f"manifest_store: {signing_config.manifest_store}\n")
    text = run_cli("verify", signed.path, "--config", config).out
    assert "checked: likeness 0.81 x the subject's own photo spread, delivered only up to 1.50" in text
    assert "audit ok: flagged plastic_skin (metrics v1)" in text


def test_configs_written_before_2026_12_and_plain_hash_info_files(tmp_path, run_cli, portrait):
    old = tmp_path / "signing.yaml"
    old.write_text("subject_photo_hashes: false\n")
    assert load_signing_config(old).subject_photo_commitments is False
    info = tmp_path / "info.json"
    info.write_text(
        json.dumps(
            {
                "base_model": "m",
                "base_model_sha256": "a" * 64,
                "template": "t",
                "seed": 1,
                "subject_photo_sha256": ["c" * 64],
            }
        )
    )
    image = tmp_path / "in.png"
    portrait.resize((64, 64)).save(image)
    result = run_cli("sign", image, "--info", info, "--out", tmp_path / "out")
    assert (
        result.code == 1
        and str(info) in result.err
        and "plain photo hashes are no longer written" in result.err
    )
