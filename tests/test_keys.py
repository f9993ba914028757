"""Credentials: `keys init`, certificate checks with clear errors, callback signer, key warnings."""

from __future__ import annotations

import datetime as dt
import os
import stat

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from signing_support import dev_keys, portrait, signing_config  # noqa: F401  (fixtures)

from headshot.errors import HeadshotError
from headshot.signing.api import sign_image, verify_file
from headshot.signing.credentials import (
    DEV_NOTICE,
    create_dev_credentials,
    ecdsa_p256_callback,
    issue_signing_certificate,
    make_ca,
    pem,
    private_pem,
    write_private_key,
)


def test_keys_init_writes_clearly_named_dev_credentials(run_cli, tmp_path):
    out = tmp_path / "keys"
    result = run_cli("keys", "init", "--out", out)
    assert result.code == 0, result.err
    assert "DEVELOPMENT ONLY" in result.out
    key = out / "dev-signer-key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert DEV_NOTICE in (out / "README.txt").read_text()
    chain = x509.load_pem_x509_certificates((out / "dev-signer-chain.pem").read_bytes())
    leaf, ca = chain
    assert DEV_NOTICE in leaf.subject.rfc4514_string()
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ekus = {oid.dotted_string for oid in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value}
    assert ekus == {"1.3.6.1.5.5.7.3.4", "1.3.6.1.5.5.7.3.36", "1.3.6.1.4.1.62558.2.1"}
    assert leaf.signature_algorithm_oid.dotted_string == "1.2.840.10045.4.3.2"  # ecdsa-with-SHA256
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True

    again = run_cli("keys", "init", "--out", out)
    assert again.code == 1 and "already exist" in again.err and "--force" in again.err
    assert run_cli("keys", "init", "--out", out, "--force").code == 0


def _write_leaf(folder, **issue_options):
    ca, ca_key = make_ca()
    leaf, key = issue_signing_certificate(ca, ca_key, **issue_options)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "chain.pem").write_bytes(pem(leaf) + pem(ca))
    write_private_key(folder / "key.pem", private_pem(key))
    return folder / "chain.pem", folder / "key.pem"


def _sign_with(chain, key, portrait, destination, signing_config):  # noqa: F811
    config = signing_config.model_copy(update={"cert_chain": chain, "private_key": key})
    return sign_image(portrait.resize((64, 64)), destination, None, config)


def test_wrong_key_expired_certificate_and_missing_eku_are_clear_errors(
    tmp_path,
    portrait,  # noqa: F811
    dev_keys,  # noqa: F811
    signing_config,  # noqa: F811
):
    out = tmp_path / "headshots"
    other_chain, other_key = _write_leaf(tmp_path / "other")
    with pytest.raises(HeadshotError, match=r"key.pem: this private key does not belong to the certificate"):
        _sign_with(dev_keys.cert_chain, other_key, portrait, out / "a.jpg", signing_config)

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    expired_chain, expired_key = _write_leaf(
        tmp_path / "expired", not_before=past, not_after=past + dt.timedelta(days=30)
    )
    with pytest.raises(HeadshotError, match=r"chain.pem: the signing certificate expired on"):
        _sign_with(expired_chain, expired_key, portrait, out / "b.jpg", signing_config)

    no_eku_chain, no_eku_key = _write_leaf(tmp_path / "noeku", ekus=[])
    with pytest.raises(HeadshotError, match=r"chain.pem: the signing certificate has no extended key usage"):
        _sign_with(no_eku_chain, no_eku_key, portrait, out / "c.jpg", signing_config)

    server_chain, server_key = _write_leaf(tmp_path / "tls", ekus=[ExtendedKeyUsageOID.SERVER_AUTH])
    with pytest.raises(HeadshotError, match="no extended key usage that C2PA accepts"):
        _sign_with(server_chain, server_key, portrait, out / "d.jpg", signing_config)
    assert not out.exists() or list(out.iterdir()) == []


def test_missing_credentials_files_name_the_file(tmp_path, portrait, signing_config):  # noqa: F811
    with pytest.raises(HeadshotError, match=r"nope.pem: certificate chain not found"):
        _sign_with(tmp_path / "nope.pem", tmp_path / "k.pem", portrait, tmp_path / "a.jpg", signing_config)


def test_a_key_readable_by_others_signs_with_a_warning_that_never_shows_the_key(
    tmp_path,
    portrait,  # noqa: F811
    signing_config,  # noqa: F811
    capsys,
):
    chain, key = _write_leaf(tmp_path / "loose")
    os.chmod(key, 0o644)
    _sign_with(chain, key, portrait, tmp_path / "a.jpg", signing_config)
    err = capsys.readouterr().err
    assert "readable by other users" in err and "chmod 600" in err
    assert "PRIVATE KEY" not in err
    assert b"PRIVATE KEY" not in (tmp_path / "a.jpg").read_bytes()


def test_callback_signer_for_a_kms_produces_a_trusted_manifest(
    tmp_path,
    portrait,  # noqa: F811
    dev_keys,  # noqa: F811
    signing_config,  # noqa: F811
):
    calls = []
    hsm = ecdsa_p256_callback(dev_keys.private_key.read_bytes())

    def kms_sign(data: bytes) -> bytes:
        calls.append(len(data))
        return hsm(data)

    config = signing_config.model_copy(update={"private_key": None, "signer_callback": kms_sign})
    signed = sign_image(portrait.resize((128, 128)), tmp_path / "kms.jpg", None, config)
    assert calls, "the callback did the signing"
    result = verify_file(signed.path, signing_config, [dev_keys.ca_certificate])
    assert result.state == "Trusted"


def test_signing_without_configured_credentials_creates_dev_credentials(tmp_path, portrait):  # noqa: F811
    from headshot.signing.config import SigningConfig

    config = SigningConfig(dev_credentials=tmp_path / "keys", manifest_store=tmp_path / "store")
    signed = sign_image(portrait.resize((64, 64)), tmp_path / "a.png", None, config)
    assert (tmp_path / "keys" / "dev-ca.pem").is_file()
    assert signed.signer == "headshot development signer"
    again = create_dev_credentials(tmp_path / "other")
    assert again.cert_chain.read_bytes() != (tmp_path / "keys" / "dev-signer-chain.pem").read_bytes()


def test_signing_config_validates_tsa_url_and_serializes_a_callback(tmp_path):
    from headshot.signing.config import SigningConfig, load_signing_config

    config = tmp_path / "signing.yaml"
    config.write_text("tsa_url: timestamp.example\n")
    with pytest.raises(HeadshotError, match=r"signing.yaml: field 'tsa_url': .*http"):
        load_signing_config(config)
    with_callback = SigningConfig(cert_chain=tmp_path / "c.pem", signer_callback=ecdsa_p256_callback)
    dumped = with_callback.model_dump(mode="json")
    assert dumped["signer_callback"] == "headshot.signing.credentials:ecdsa_p256_callback"
    assert dumped["tsa_url"] is None


def test_parallel_first_use_of_dev_credentials_yields_one_consistent_set(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from headshot.signing.credentials import ensure_dev_credentials, load_credentials

    folder = tmp_path / "outputs" / "keys"
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ensure_dev_credentials(folder), range(4)))
    assert {r.cert_chain for r in results} == {folder / "dev-signer-chain.pem"}
    load_credentials(folder / "dev-signer-chain.pem", folder / "dev-signer-key.pem")  # key matches
    assert sorted(p.name for p in tmp_path.joinpath("outputs").iterdir()) == ["keys"], "no staging left"
