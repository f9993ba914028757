"""`headshot verify`: our images, images signed by other C2PA tools, stripped and unsigned images."""

from __future__ import annotations

import io
import json
from pathlib import Path

import c2pa
import pytest
from signing_support import dev_keys, portrait, reencode, sign_the_old_way, signing_config  # noqa: F401  (fixtures)

from headshot.samples import astronaut
from headshot.signing.api import VerifyOptions, sign_image, verify_file

DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
AI = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _sign_with_plain_c2pa(image, path, dev_keys, manifest, remote_url=None):  # noqa: F811
    """Another tool's signing: c2pa-python directly, its own manifest, no XMP, no watermark.

    With `remote_url`, the manifest is not embedded: the file points to that URL (a cloud
    manifest) and the manifest store bytes are written next to it as PATH.c2pa.
    """
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    chain = dev_keys.cert_chain.read_bytes()
    key = dev_keys.private_key.read_bytes()
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None))
    signed = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        if remote_url:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        manifest_bytes = builder.sign(signer, "image/jpeg", io.BytesIO(buffer.getvalue()), signed)
    path.write_bytes(signed.getvalue())
    if remote_url:
        path.with_suffix(".c2pa").write_bytes(manifest_bytes)
    return path


CAMERA_MANIFEST = {
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


@pytest.fixture()
def manifest_server(tmp_path):
    """A local HTTP server (loopback only) serving tmp_path/served: where cloud manifests live."""
    import functools
    import http.server
    import threading

    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_remote_manifest_reads_as_not_fetched_unless_fetching_is_allowed(
    tmp_path,
    run_cli,
    dev_keys,  # noqa: F811
    manifest_server,
):
    served, base = manifest_server
    url = f"{base}/beach.c2pa"
    photo = _sign_with_plain_c2pa(
        astronaut(), served / "beach.jpg", dev_keys, CAMERA_MANIFEST, remote_url=url
    )

    offline = verify_file(photo)
    assert offline.state == "Remote" and offline.remote_manifest_url == url
    assert offline.passed and not offline.ai_generated
    assert "remote manifest, not fetched" in offline.errors
    cli = run_cli("verify", photo)
    assert cli.code == 0 and f"remote manifest, not fetched ({url}) | NOT declared AI-generated" in cli.out
    assert run_cli("verify", photo, "--require-ai").code == 1

    fetched = run_cli("verify", photo, "--fetch-remote", "--json")
    assert fetched.code == 0, fetched.err
    (report,) = json.loads(fetched.out)["files"]
    assert report["state"] == "Valid" and report["claim_generator"] == "PhotoDesk 7.2"
    assert report["remote_manifest_url"] == url

    (served / "beach.c2pa").unlink()  # the server no longer has it: unknown, not Invalid
    gone = verify_file(photo, options=VerifyOptions(fetch_remote=True))
    assert gone.state == "Remote" and any("could not be fetched" in e for e in gone.errors)


@pytest.fixture(scope="module")
def camera_edit(tmp_path_factory, dev_keys):  # noqa: F811
    return _sign_with_plain_c2pa(
        astronaut(), tmp_path_factory.mktemp("other") / "edit.jpg", dev_keys, CAMERA_MANIFEST
    )


def test_an_image_from_another_c2pa_tool_is_read_and_reported_not_ai(run_cli, camera_edit, signing_config):  # noqa: F811
    result = verify_file(camera_edit, signing_config)
    assert result.state == "Valid"
    assert result.claim_generator == "PhotoDesk 7.2"
    assert result.digital_source_type == DIGITAL_CAPTURE
    assert not result.ai_generated and result.disclosed_by == []
    assert not result.watermark.found, "no false watermark on an unmarked real photo"

    # A reader of other people's images: reported as not AI-generated, not a failure.
    cli = run_cli("verify", camera_edit, "--json")
    assert cli.code == 0, cli.err
    (report,) = json.loads(cli.out)["files"]
    assert report["state"] == "Valid" and report["ai_generated"] is False and report["passed"] is True
    text = run_cli("verify", camera_edit)
    assert text.code == 0 and "Valid | NOT declared AI-generated | signer:" in text.out

    # A studio checking what it publishes: --require-ai makes the same file a failure.
    strict = run_cli("verify", camera_edit, "--require-ai", "--json")
    assert strict.code == 1
    document = json.loads(strict.out)
    assert document["require_ai"] is True and document["passed"] is False
    assert "edit.jpg (not declared AI-generated)" in strict.err


def test_generate_delivery_checks_with_require_ai(camera_edit, tmp_path, signing_config):  # noqa: F811
    """generate's read-back after signing uses --require-ai semantics: a valid camera manifest
    is not a deliverable headshot."""
    from headshot.pipelines.delivery import load_signer

    config = tmp_path / "signing.yaml"
    config.write_text(
        f"cert_chain: {signing_config.cert_chain}\nprivate_key: {signing_config.private_key}\n"
        f"manifest_store: {signing_config.manifest_store}\n"
    )
    verification = load_signer(config, tmp_path).verify(camera_edit)
    assert verification.state == "Valid" and verification.require_ai and not verification.passed


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


def test_verify_cli_reports_each_file_and_with_require_ai_fails_on_any_undisclosed_one(
    tmp_path,
    run_cli,
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
):
    # At the size generate delivers: a 512 px image halved and re-encoded at q70 keeps too
    # little of the mark to be sure of (docs/watermark.md, limits).
    signed = sign_image(portrait.resize((1024, 1024)), tmp_path / "studio.jpg", None, signing_config)
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
    assert run_cli("verify", signed.path, stripped, unsigned, "--config", config).code == 0
    mixed = run_cli("verify", signed.path, stripped, unsigned, "--config", config, "--require-ai")
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
    (report,) = json.loads(garbage.out)["files"]
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
    assert none.code == 1 and f"{empty}: the folder is empty: nothing to verify" in none.err
    (empty / "notes.txt").write_text("not an image")
    (empty / "sub").mkdir()
    none = run_cli("verify", empty)
    assert none.code == 1 and "no images in this folder, only 2 other entries (add --recursive" in none.err


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


def test_json_output_follows_the_documented_versioned_schema(
    tmp_path,
    run_cli,
    camera_edit,
    dev_keys,  # noqa: F811
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
    manifest_server,
):
    """Real output of every kind of file, validated against docs/verify-schema.json."""
    import jsonschema

    schema = json.loads((Path(__file__).parent.parent / "docs" / "verify-schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    signed = sign_image(portrait, tmp_path / "ours.jpg", None, signing_config).path
    stripped = tmp_path / "stripped.jpg"
    reencode(signed, quality=70, scale=0.5).save(stripped)
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("hello")
    served, base = manifest_server
    remote = _sign_with_plain_c2pa(
        astronaut(), served / "cloud.jpg", dev_keys, CAMERA_MANIFEST, remote_url=f"{base}/nowhere.c2pa"
    )
    config = tmp_path / "signing.yaml"
    config.write_text(f"manifest_store: {signing_config.manifest_store}\n")
    files = (signed, stripped, camera_edit, not_image, remote)
    for extra in ((), ("--require-ai",)):
        result = run_cli("verify", *files, "--json", "--config", config, *extra)
        document = json.loads(result.out)
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)
        assert document["schema_version"] == 2 and len(document["files"]) == 5
        assert result.code == (0 if document["passed"] else 1)
        states = [f["state"] for f in document["files"]]
        assert states == ["Valid", "Absent", "Valid", "Absent", "Remote"]
    broken = dict(document, schema_version=1)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
