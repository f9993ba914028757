"""`headshot verify`: our images, images signed by other C2PA tools, stripped and unsigned images."""

from __future__ import annotations

import io
import json

import c2pa
import pytest
from signing_support import dev_keys, portrait, reencode, sign_the_old_way, signing_config  # noqa: F401  (fixtures)

from headshot.samples import astronaut
from headshot.signing.api import sign_image, verify_file

DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _sign_with_plain_c2pa(image, path, dev_keys, manifest):  # noqa: F811
    """Another tool's signing: c2pa-python directly, its own manifest, no XMP, no watermark."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    chain = dev_keys.cert_chain.read_bytes()
    key = dev_keys.private_key.read_bytes()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    signed = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO(buffer.getvalue()), signed)
    path.write_bytes(signed.getvalue())
    return path


@pytest.fixture(scope="module")
def camera_edit(tmp_path_factory, dev_keys):  # noqa: F811
    manifest = {
        "claim_generator_info": [{"name": "PhotoDesk", "version": "7.2"}],
        "title": "beach.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE},
                        {"action": "c2pa.edited", "softwareAgent": {"name": "PhotoDesk", "version": "7.2"}},
                    ]
                },
            }
        ],
    }
    return _sign_with_plain_c2pa(
        astronaut(), tmp_path_factory.mktemp("other") / "edit.jpg", dev_keys, manifest
    )


def test_an_image_from_another_c2pa_tool_is_read_and_reported_not_ai(run_cli, camera_edit, signing_config):  # noqa: F811
    result = verify_file(camera_edit, signing_config)
    assert result.state == "Valid"
    assert result.claim_generator == "PhotoDesk 7.2"
    assert result.digital_source_type == DIGITAL_CAPTURE
    assert not result.ai_generated and result.disclosed_by == []
    assert not result.watermark.found, "no false watermark on an unmarked real photo"

    cli = run_cli("verify", camera_edit, "--json")
    assert cli.code == 1, "undisclosed -> non-zero exit"
    (report,) = json.loads(cli.out)
    assert report["state"] == "Valid" and report["ai_generated"] is False
    assert "not declared AI-generated" in cli.err


def test_another_tools_ai_declaration_counts_as_disclosure(tmp_path, run_cli, dev_keys, portrait):  # noqa: F811
    manifest = {
        "claim_generator_info": [{"name": "OtherGen", "version": "2"}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": AI}]},
            }
        ],
    }
    path = _sign_with_plain_c2pa(portrait, tmp_path / "gen.jpg", dev_keys, manifest)
    cli = run_cli("verify", path, "--trust-anchors", dev_keys.ca_certificate)
    assert cli.code == 0, cli.err
    assert "Trusted" in cli.out and "AI-generated (c2pa)" in cli.out and "OtherGen 2" in cli.out
    assert "no watermark" in cli.out


def test_verify_cli_reports_each_file_and_fails_on_any_undisclosed_one(
    tmp_path,
    run_cli,
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
):
    signed = sign_image(portrait, tmp_path / "studio.jpg", None, signing_config)
    config = tmp_path / "signing.yaml"
    config.write_text(f"manifest_store: {signing_config.manifest_store}\n")

    ok = run_cli("verify", signed.path, "--config", config)
    assert ok.code == 0, ok.err
    assert "Valid | AI-generated (c2pa, xmp, watermark)" in ok.out
    assert f"watermark {signed.watermark_id}" in ok.out

    stripped = tmp_path / "uploaded.jpg"
    reencode(signed.path, quality=70, scale=0.5).save(stripped)
    unsigned = tmp_path / "photo.png"
    astronaut().save(unsigned)
    mixed = run_cli("verify", signed.path, stripped, unsigned, "--config", config)
    assert mixed.code == 1
    lines = mixed.out.strip().splitlines()
    assert len(lines) == 3
    assert "no C2PA manifest | AI-generated (watermark)" in lines[1]
    assert "manifest store: studio.jpg signed" in lines[1]
    assert "NOT declared AI-generated" in lines[2] and "no watermark" in lines[2]
    assert "1 of 3 files failed verification" in mixed.err and "photo.png" in mixed.err

    # The same lookup with the store named on the command line instead of a config file.
    flagged = run_cli("verify", stripped, "--manifest-store", signing_config.manifest_store)
    assert flagged.code == 0, flagged.err
    assert "manifest store: studio.jpg signed" in flagged.out


def test_verify_input_errors_name_the_file(tmp_path, run_cli):
    missing = run_cli("verify", tmp_path / "nope.jpg")
    assert missing.code == 1 and "nope.jpg: file not found" in missing.err
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    garbage = run_cli("verify", text, "--json")
    assert garbage.code == 1
    (report,) = json.loads(garbage.out)
    assert report["state"] == "Absent"
    assert report["image_readable"] is False
    assert "notes.jpg: not an image (or a format headshot cannot read)" in report["errors"]
    anchors = tmp_path / "anchors.pem"
    anchors.write_text("hello")
    bad = run_cli("verify", text, "--trust-anchors", anchors)
    assert bad.code == 1 and "anchors.pem: not a PEM certificate file" in bad.err


def test_verify_a_folder_checks_every_image_in_it_and_subfolders_with_recursive(
    tmp_path,
    run_cli,
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
):
    folder = tmp_path / "delivered"
    nested = folder / "older"
    nested.mkdir(parents=True)
    sign_image(portrait, folder / "a.jpg", None, signing_config)
    sign_image(portrait, nested / "b.png", None, signing_config)
    (folder / "index.json").write_text("{}")  # not an image: a folder's other files are skipped
    config = tmp_path / "signing.yaml"
    config.write_text(f"manifest_store: {signing_config.manifest_store}\n")

    flat = run_cli("verify", folder, "--config", config)
    assert flat.code == 0, flat.err
    lines = flat.out.strip().splitlines()
    assert len(lines) == 1 and "a.jpg: Valid | AI-generated" in lines[0]

    deep = run_cli("verify", folder, "--recursive", "--config", config)
    assert deep.code == 0, deep.err
    lines = deep.out.strip().splitlines()
    assert len(lines) == 2 and "b.png: Valid | AI-generated" in lines[1]

    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_cli("verify", empty)
    assert none.code == 1 and "empty: no images in this folder" in none.err


def test_verify_a_file_that_is_not_an_image_says_so_in_words(tmp_path, run_cli):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image at all")
    result = run_cli("verify", text)
    assert result.code == 1
    message = result.out + result.err
    assert "notes.jpg: not an image (or a format headshot cannot read)" in message
    assert "BytesIO" not in message and "cannot identify image file" not in message
    assert "1 of 1 files failed verification" in result.err and "notes.jpg (not an image)" in result.err


def test_a_headshot_signed_the_old_way_still_verifies_and_is_found_from_its_mark(
    tmp_path,
    dev_keys,  # noqa: F811
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
):
    """Before 2026-12: v1 mark, c2pa.watermarked + c2pa.soft-binding with our algorithm name."""
    old = sign_the_old_way(portrait, tmp_path / "old.jpg", signing_config, "0ddba115")
    result = verify_file(old, signing_config, [dev_keys.ca_certificate])
    assert result.state == "Trusted" and result.passed, result.errors
    assert result.disclosed_by == ["c2pa", "xmp", "watermark"]
    assert result.watermark.identifier == "0ddba115" and result.watermark.matches_manifest is True

    stripped = tmp_path / "old-uploaded.jpg"
    reencode(old, quality=75, scale=0.5).save(stripped)
    copy = verify_file(stripped, signing_config)
    assert copy.state == "Absent" and copy.disclosed_by == ["watermark"]
    assert copy.watermark.identifier == "0ddba115"
    assert copy.manifest_store.found and copy.manifest_store.summary["title"] == "old.jpg"
