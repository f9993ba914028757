"""Signing: C2PA round trip, tamper detection, XMP, formats, privacy and atomic writes."""

from __future__ import annotations

import getpass
import io
import json

import pytest
from PIL import Image
from signing_support import (  # noqa: F401  (fixtures)
    dev_keys,
    generation_info,
    portrait,
    reencode,
    signing_config,
)

from headshot.errors import HeadshotError
from headshot.signing import watermark
from headshot.signing.api import sign_file, sign_image, verify_file
from headshot.signing.xmp import TRAINED_ALGORITHMIC_MEDIA, read_digital_source_type


@pytest.fixture(scope="module")
def signed_jpeg(tmp_path_factory, portrait, generation_info, signing_config):  # noqa: F811
    headshot = portrait.resize((1024, 1024))  # the size generate delivers
    return sign_image(
        headshot, tmp_path_factory.mktemp("signed") / "studio.jpg", generation_info, signing_config
    )


def test_round_trip_is_trusted_with_the_dev_ca_and_valid_without(signed_jpeg, dev_keys, signing_config):  # noqa: F811
    trusted = verify_file(signed_jpeg.path, signing_config, [dev_keys.ca_certificate])
    assert trusted.state == "Trusted"
    assert trusted.ai_generated and trusted.disclosed_by == ["c2pa", "xmp", "watermark"]
    assert trusted.digital_source_type == TRAINED_ALGORITHMIC_MEDIA
    assert trusted.signer.startswith("headshot development signer")
    assert trusted.claim_generator.startswith("headshot ")
    assert trusted.manifest_label == signed_jpeg.manifest_label
    assert trusted.watermark.identifier == signed_jpeg.watermark_id
    assert trusted.watermark.matches_manifest is True
    assert trusted.passed and not trusted.errors

    untrusted = verify_file(signed_jpeg.path, signing_config)
    assert untrusted.state == "Valid"
    assert untrusted.passed, "Valid (not on a trust list) still counts as disclosed and intact"


def test_one_changed_pixel_byte_makes_it_invalid(signed_jpeg, tmp_path, dev_keys, signing_config):  # noqa: F811
    data = bytearray(signed_jpeg.path.read_bytes())
    scan = data.rfind(b"\xff\xda")  # start of the entropy-coded pixel data
    data[scan + len(data[scan:]) // 2] ^= 0x04
    tampered = tmp_path / "tampered.jpg"
    tampered.write_bytes(bytes(data))
    result = verify_file(tampered, signing_config, [dev_keys.ca_certificate])
    assert result.state == "Invalid"
    assert not result.passed
    assert any("assertion.dataHash.mismatch" in error for error in result.errors)


def test_manifest_declares_ai_generation_record_and_training_opt_out(signed_jpeg):
    import c2pa

    with c2pa.Reader("image/jpeg", io.BytesIO(signed_jpeg.path.read_bytes())) as reader:
        manifest = reader.get_active_manifest()
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    actions = assertions["c2pa.actions.v2"]["actions"]
    created = next(a for a in actions if a["action"] == "c2pa.created")
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert created["softwareAgent"]["name"] == "headshot"
    # C2PA 2.2: soft bindings only with registered algorithms, and c2pa.watermarked only with
    # a soft binding; the in-house mark is described under the project's own label instead.
    assert "c2pa.soft-binding" not in assertions
    assert not any(a["action"] == "c2pa.watermarked" for a in actions)
    mark = assertions["org.headshot.watermark"]
    assert mark["identifier"] == signed_jpeg.watermark_id
    assert mark["alg"] == watermark.ALGORITHM and mark["version"] == watermark.VERSION
    assert mark["key_id"] == watermark.key_id(watermark.DEFAULT_KEY) and mark["key_public"] is True
    record = assertions["org.headshot.generation"]
    assert record["template"] == "studio-grey" and record["seed"] == 7 and record["lora_sha256"] == "b" * 64
    assert "prompt" not in record, "prompts stay private unless the user opts in"
    assert {e["use"] for e in assertions["cawg.training-mining"]["entries"].values()} == {"notAllowed"}
    # The training photos enter as keyed commitments only: no plain hash anyone could match.
    photos = [i["instance_id"] for i in manifest["ingredients"]]
    assert len(photos) == 2 and all(i.startswith("hmac-sha256:") for i in photos)
    assert not any("c" * 64 in i or "d" * 64 in i for i in photos)
    assert assertions["org.headshot.subject-photos"]["count"] == 2


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp"])
def test_each_output_format_is_signed_with_xmp_that_survives_signing(
    suffix,
    tmp_path,
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
):
    small = portrait.resize((256, 256))
    signed = sign_image(small, tmp_path / f"out{suffix}", None, signing_config)
    with Image.open(signed.path) as image:
        assert read_digital_source_type(image) == TRAINED_ALGORITHMIC_MEDIA
        assert image.format == {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP"}[suffix]
    result = verify_file(signed.path, signing_config)
    assert result.state == "Valid"
    assert result.disclosed_by == ["c2pa", "xmp", "watermark"]


def test_stripped_jpeg_q70_and_half_size_copies_are_identified_by_watermark(
    signed_jpeg,
    tmp_path,
    signing_config,  # noqa: F811
):
    for name, copy in {
        "q70.jpg": reencode(signed_jpeg.path, quality=70),
        "half.jpg": reencode(signed_jpeg.path, quality=85, scale=0.5),
    }.items():
        copy.save(tmp_path / name, "JPEG", quality=95)
        result = verify_file(tmp_path / name, signing_config)
        assert result.state == "Absent", "the metadata is gone"
        assert result.ai_generated and result.disclosed_by == ["watermark"], name
        assert result.watermark.identifier == signed_jpeg.watermark_id
        assert result.manifest_store.found
        assert result.manifest_store.summary["manifest_label"] == signed_jpeg.manifest_label
        assert result.manifest_store.summary["generation"]["template"] == "studio-grey"
        assert result.digital_source_type == TRAINED_ALGORITHMIC_MEDIA


def test_no_local_paths_user_names_or_exif_in_the_signed_file(
    tmp_path,
    portrait,  # noqa: F811
    generation_info,  # noqa: F811
    signing_config,  # noqa: F811
):
    user = getpass.getuser()
    selfie_folder = tmp_path / f"home-{user}" / "selfies"
    selfie_folder.mkdir(parents=True)
    source = selfie_folder / "IMG_0001.jpg"
    exif = Image.Exif()
    exif[0x013B] = f"{user} photographer"  # Artist
    exif[0x010E] = str(source)  # ImageDescription: a local path
    portrait.save(source, "JPEG", exif=exif.tobytes())
    assert b"Exif" in source.read_bytes()
    local_model = generation_info.model_copy(update={"base_model": str(tmp_path / "models" / "my-sdxl")})
    signed = sign_file(source, tmp_path / "out" / "headshot.jpg", local_model, signing_config)
    data = signed.path.read_bytes()
    assert b"Exif\x00\x00" not in data
    assert str(tmp_path).encode() not in data
    assert f"home-{user}".encode() not in data
    assert b"a photo of sks person" not in data, "prompt not published without opt-in"
    from headshot.signing.repository import lookup

    summary = lookup(signing_config, signed.watermark_id).summary
    assert str(tmp_path) not in json.dumps(summary)
    assert summary["generation"]["base_model"] == "my-sdxl"


def test_prompts_enter_the_manifest_only_on_opt_in(tmp_path, portrait, generation_info, signing_config):  # noqa: F811
    config = signing_config.model_copy(update={"include_prompts": True})
    signed = sign_image(portrait.resize((128, 128)), tmp_path / "p.jpg", generation_info, config)
    assert b"a photo of sks person" in signed.path.read_bytes()


def test_a_failed_signing_leaves_nothing_in_the_destination_folder(
    tmp_path,
    portrait,  # noqa: F811
    dev_keys,  # noqa: F811
    signing_config,  # noqa: F811
):
    headshots = tmp_path / "headshots"
    headshots.mkdir()

    def broken_hsm(data: bytes) -> bytes:
        raise RuntimeError("HSM unreachable")

    config = signing_config.model_copy(update={"signer_callback": broken_hsm})
    with pytest.raises(HeadshotError, match="signing failed"):
        sign_image(portrait, headshots / "studio.jpg", None, config)
    assert list(headshots.iterdir()) == [], "no unsigned image, no temporary file"
    with pytest.raises(HeadshotError, match=r"\.tiff: cannot sign this format"):
        sign_image(portrait, headshots / "studio.tiff", None, signing_config)
    assert list(headshots.iterdir()) == []


def test_sign_file_refuses_to_overwrite_its_source(tmp_path, portrait, signing_config):  # noqa: F811
    source = tmp_path / "a.jpg"
    portrait.save(source)
    with pytest.raises(HeadshotError, match="overwrite the source"):
        sign_file(source, source, None, signing_config)
    with pytest.raises(HeadshotError, match="missing.png: image not found"):
        sign_file(tmp_path / "missing.png", tmp_path / "b.jpg", None, signing_config)


def test_sign_file_keeps_an_exif_rotated_photo_upright(tmp_path, portrait, signing_config):  # noqa: F811
    from intake_support import save_with_exif_rotation_and_gps

    source = tmp_path / "sideways.jpg"
    save_with_exif_rotation_and_gps(portrait, source)
    assert Image.open(source).size == (portrait.height, portrait.width), "stored sideways"
    signed = sign_file(source, tmp_path / "signed.jpg", None, signing_config)
    # EXIF is not carried into the signed copy, so its orientation must be applied first.
    assert Image.open(signed.path).size == portrait.size


def test_sign_cli_signs_copies_with_a_generation_record(tmp_path, run_cli, portrait, generation_info):  # noqa: F811
    source = tmp_path / "render.png"
    portrait.save(source)
    info = tmp_path / "info.json"
    info.write_text(generation_info.model_dump_json())
    config = tmp_path / "signing.yaml"
    config.write_text(
        f"dev_credentials: {tmp_path / 'keys'}\nmanifest_store: {tmp_path / 'store'}\noutput_format: webp\n"
    )
    result = run_cli("sign", source, "--info", info, "--config", config)
    assert result.code == 0, result.err
    signed = tmp_path / "render.signed.png"
    assert f"-> {signed}" in result.out and "DEVELOPMENT ONLY" in result.err
    to_folder = run_cli(
        "sign", source, "--out", tmp_path / "delivered", "--format", "jpg", "--config", config
    )
    assert to_folder.code == 0, to_folder.err
    verified = run_cli("verify", signed, tmp_path / "delivered" / "render.jpg", "--config", config)
    assert verified.code == 0, verified.err
    assert "template studio-grey" in verified.out

    bad = tmp_path / "bad.yaml"
    bad.write_text("watermark:\n  strength: loud\n")
    error = run_cli("sign", source, "--config", bad)
    assert error.code == 1 and "bad.yaml: field 'watermark.strength': expected a number" in error.err


def test_shipped_signing_yaml_is_the_documented_defaults():
    from headshot.config import configs_root
    from headshot.signing.config import SigningConfig, load_signing_config

    assert load_signing_config(configs_root() / "signing.yaml") == SigningConfig()
