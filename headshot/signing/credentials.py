"""Signing credentials: development CA and certificate, loading and checking a chain + key.

The checks here run before any signing so that a wrong key, an expired certificate or a
certificate without a C2PA-acceptable extended key usage stops with a message that names
the file, instead of producing an image whose manifest every reader rejects.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from rich.console import Console
from rich.markup import escape

from headshot.errors import HeadshotError
from headshot.records import atomic_write_bytes, atomic_write_text

console = Console(stderr=True, soft_wrap=True)  # no line breaks inside paths

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
# Extended key usages a C2PA validator accepts for a claim-signing certificate.
ACCEPTED_EKUS = {
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    DOCUMENT_SIGNING,
    C2PA_CLAIM_SIGNING,
    ObjectIdentifier("1.3.6.1.4.1.311.76.59.1.9"),  # Microsoft document signing
}
DEV_CA_FILE = "dev-ca.pem"
DEV_CHAIN_FILE = "dev-signer-chain.pem"
DEV_KEY_FILE = "dev-signer-key.pem"
DEV_NOTICE = "DEVELOPMENT ONLY - not on any public trust list"
_DEV_README = f"""headshot development credentials ({DEV_NOTICE})

{DEV_CA_FILE}          a local certificate authority made on this machine (its key was discarded)
{DEV_CHAIN_FILE} the ES256 signing certificate issued by it, then the CA certificate
{DEV_KEY_FILE}   the signing certificate's private key (mode 0600: keep it private)

Images signed with these verify as "Valid". They verify as "Trusted" only for someone who
chooses to trust {DEV_CA_FILE}: `headshot verify --trust-anchors {DEV_CA_FILE} FILE`.
For images you publish, configure a certificate from a CA on the C2PA trust list
(cert_chain / private_key or signer_callback in configs/signing.yaml).
"""


@dataclass(frozen=True)
class CredentialPaths:
    """Where a set of credentials lives (what `keys init` writes)."""

    cert_chain: Path
    private_key: Path
    ca_certificate: Path | None = None

    def as_config(self) -> dict[str, object]:
        """Overrides for `load_signing_config` that sign with these credentials."""
        return {"cert_chain": self.cert_chain, "private_key": self.private_key}


@dataclass(frozen=True)
class Credentials:
    """A checked chain with a way to sign: a private key or a callback."""

    chain_pem: bytes
    certificate: x509.Certificate
    private_key_pem: bytes | None
    callback: Callable[[bytes], bytes] | None
    source: str  # what to name in error messages (the chain file or "callback signer")

    @property
    def signer_name(self) -> str:
        names = self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.certificate.subject.rfc4514_string()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"headshot ({DEV_NOTICE})"),
        ]
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(days: int = 3650) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed P-256 CA certificate for development."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("headshot development CA")
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue_signing_certificate(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    ekus: list[ObjectIdentifier] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An ES256 leaf: CA:FALSE, digitalSignature, AKI, EKU emailProtection + documentSigning +
    C2PA claim signing (unless `ekus` says otherwise; an empty list leaves the EKU out)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    ekus = (
        [ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING, C2PA_CLAIM_SIGNING] if ekus is None else ekus
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("headshot development signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(hours=1))
        .not_valid_after(not_after or now + dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_private_key(path: Path, key_pem: bytes) -> None:
    """Atomic write with mode 0600 from the start (the temporary file is 0600 too)."""
    atomic_write_bytes(path, key_pem, mode=0o600)


def write_certificate(path: Path, certificate_pem: bytes) -> None:
    atomic_write_bytes(path, certificate_pem, mode=0o644)


def create_dev_credentials(folder: Path) -> CredentialPaths:
    """Write a fresh development CA, signing certificate and key into `folder` (mode 0700:
    a keys folder made with the umask would be world-writable under umask 000)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    ca, ca_key = make_ca()
    leaf, leaf_key = issue_signing_certificate(ca, ca_key)
    paths = CredentialPaths(folder / DEV_CHAIN_FILE, folder / DEV_KEY_FILE, folder / DEV_CA_FILE)
    write_private_key(paths.private_key, private_pem(leaf_key))
    write_certificate(paths.cert_chain, pem(leaf) + pem(ca))
    write_certificate(folder / DEV_CA_FILE, pem(ca))
    atomic_write_text(folder / "README.txt", _DEV_README)
    return paths


def ensure_dev_credentials(folder: Path) -> CredentialPaths:
    """The development credentials in `folder`, created there first if missing.

    A new folder is built under a temporary name and renamed into place, so processes
    signing in parallel never see (or mix) a half-written key and certificate.
    """
    folder = Path(folder)
    paths = CredentialPaths(folder / DEV_CHAIN_FILE, folder / DEV_KEY_FILE, folder / DEV_CA_FILE)
    if paths.cert_chain.is_file() and paths.private_key.is_file():
        return paths
    console.print(f"creating development signing credentials in {escape(str(folder))} ({DEV_NOTICE})")
    if folder.exists():
        return create_dev_credentials(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        create_dev_credentials(staging)
        os.chmod(staging, 0o700)
        os.rename(staging, folder)
    except OSError:
        if not (paths.cert_chain.is_file() and paths.private_key.is_file()):
            raise HeadshotError(f"{folder}: cannot create development credentials there") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def _read(path: Path, what: str) -> bytes:
    if not Path(path).is_file():
        raise HeadshotError(f"{path}: {what} not found")
    return Path(path).read_bytes()


_warned_keys: set[tuple[str, int]] = set()


def _warn_if_readable_by_others(path: Path) -> None:
    """Once per key file and mode in a process (generate signs many images in a row)."""
    mode = stat.S_IMODE(Path(path).stat().st_mode)
    if mode & 0o077 and (str(Path(path).resolve()), mode) not in _warned_keys:
        _warned_keys.add((str(Path(path).resolve()), mode))
        console.print(
            f"[yellow]warning[/]: private key {escape(str(path))} is readable by other users "
            f"(mode {mode:04o}); run `chmod 600 {escape(str(path))}`"
        )


def _load_chain(path: Path) -> tuple[bytes, list[x509.Certificate]]:
    data = _read(path, "certificate chain")
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise HeadshotError(f"{path}: not a PEM certificate chain") from None
    return data, chain


def check_signing_certificate(certificate: x509.Certificate, source: str) -> None:
    """Refuse certificates a C2PA validator would reject: expired, CA, or without a C2PA EKU."""
    now = dt.datetime.now(dt.timezone.utc)
    if certificate.not_valid_after_utc < now:
        raise HeadshotError(
            f"{source}: the signing certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d}"
        )
    if certificate.not_valid_before_utc > now:
        raise HeadshotError(
            f"{source}: the signing certificate is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        if constraints.ca:
            raise HeadshotError(f"{source}: the signing certificate is a CA certificate (CA:TRUE)")
    except x509.ExtensionNotFound:
        pass
    try:
        ekus = set(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        ekus = set()
    if not ekus & ACCEPTED_EKUS:
        raise HeadshotError(
            f"{source}: the signing certificate has no extended key usage that C2PA accepts "
            "(emailProtection, documentSigning or C2PA claim signing 1.3.6.1.4.1.62558.2.1)"
        )


def _callable_from(spec: str | Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    if callable(spec):
        return spec
    module_name, _, attribute = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise HeadshotError(f"signer_callback '{spec}': cannot import it ({exc})") from None
    if not callable(function):
        raise HeadshotError(f"signer_callback '{spec}': not a callable")
    return function


def load_credentials(
    cert_chain: Path,
    private_key: Path | None = None,
    signer_callback: str | Callable[[bytes], bytes] | None = None,
) -> Credentials:
    """Load and check a chain with its key (or callback): clear errors before any signing."""
    chain_pem, chain = _load_chain(cert_chain)
    leaf = chain[0]
    check_signing_certificate(leaf, str(cert_chain))
    if signer_callback is not None:
        return Credentials(chain_pem, leaf, None, _callable_from(signer_callback), "callback signer")
    if private_key is None:
        raise HeadshotError(f"{cert_chain}: no private_key (or signer_callback) configured for it")
    key_pem = _read(private_key, "private key")
    _warn_if_readable_by_others(private_key)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        # The key's contents never enter a message or a log.
        raise HeadshotError(f"{private_key}: not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != leaf.public_key().public_bytes(
        serialization.Encoding.DER, public
    ):
        raise HeadshotError(
            f"{private_key}: this private key does not belong to the certificate in {cert_chain}"
        )
    return Credentials(chain_pem, leaf, key_pem, None, str(cert_chain))


def ecdsa_p256_callback(key_pem: bytes) -> Callable[[bytes], bytes]:
    """A callback signer over a local P-256 key: what a KMS/HSM integration looks like.

    Returns raw r||s (64 bytes), the form COSE ES256 uses.
    """
    key = serialization.load_pem_private_key(key_pem, password=None)

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def resolve_credentials(config) -> Credentials:
    """The configured chain + key/callback, or the development credentials (created if missing)."""
    if config.cert_chain is not None:
        return load_credentials(config.cert_chain, config.private_key, config.signer_callback)
    if config.private_key is not None:
        raise HeadshotError(f"{config.private_key}: private_key is set but cert_chain is not")
    dev = ensure_dev_credentials(config.dev_credentials)
    return load_credentials(dev.cert_chain, dev.private_key, config.signer_callback)
