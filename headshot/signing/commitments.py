"""Keyed commitments to the subject's training photos: provable by the studio, opaque to others.

A plain SHA-256 of each selfie in every manifest lets anyone holding a byte-identical copy
(an emailed original, a leaked phone backup) prove that it trained a headshot, and links
all of a person's headshots by the same hashes. Instead each headshot carries

    HMAC-SHA256(secret, salt || SHA-256(photo file))

per accepted photo, sorted, under a fresh random salt per headshot. The secret is one per
subject, kept with the subject's outputs (`<subject>/secrets/photo-commitments.key`, mode
0600) and never written into a manifest. Without it the commitments say nothing about any
photo and two headshots' commitments look unrelated; with it, `headshot check-photo`
proves which photos were used.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from pydantic import Field

from headshot.config import StrictModel
from headshot.errors import HeadshotError
from headshot.records import sha256_file

ALGORITHM = "hmac-sha256"
VERSION = 1
SECRET_FILE = Path("secrets") / "photo-commitments.key"
INSTANCE_PREFIX = f"{ALGORITHM}:"
_SECRET_BYTES = 32


class PhotoCommitments(StrictModel):
    """What the manifest holds of the subject's photos: no hash an outsider can match."""

    alg: str = ALGORITHM
    version: int = VERSION
    salt: str = Field(pattern=r"^[0-9a-f]{32}$")  # 16 random bytes, fresh per headshot
    # HMAC of the salt alone: tells the right secret from a wrong one, and nothing else.
    key_check: str = Field(pattern=r"^[0-9a-f]{64}$")
    commitments: list[str] = Field(default_factory=list)  # sorted hex digests


def secret_path(subject_root: Path) -> Path:
    return Path(subject_root) / SECRET_FILE


def load_or_create_secret(path: Path) -> bytes:
    """The subject's secret; created once (never replaced: commitments made with it stay
    checkable for as long as the file is kept)."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                handle.write(secrets.token_hex(_SECRET_BYTES) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)  # fails if another run created it first: theirs stays
            except FileExistsError:
                pass
        except OSError as exc:
            raise HeadshotError(
                f"{path}: cannot create the photo-commitment secret ({exc.strerror or exc})"
            ) from None
        finally:
            temporary.unlink(missing_ok=True)
    return read_secret(path)


def read_secret(path: Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise HeadshotError(
            f"{path}: photo-commitment secret not found (generate writes it beside the subject's outputs)"
        )
    try:
        text = path.read_text(encoding="ascii", errors="strict")[:200].strip()
        secret = bytes.fromhex(text)
    except (OSError, UnicodeDecodeError, ValueError):
        raise HeadshotError(
            f"{path}: not a photo-commitment secret (expected {2 * _SECRET_BYTES} hex digits)"
        ) from None
    if len(secret) != _SECRET_BYTES:
        raise HeadshotError(
            f"{path}: not a photo-commitment secret (expected {2 * _SECRET_BYTES} hex digits)"
        )
    return secret


def commitment(secret: bytes, salt: bytes, photo_sha256: str) -> str:
    return hmac.new(secret, salt + bytes.fromhex(photo_sha256), hashlib.sha256).hexdigest()


def _key_check(secret: bytes, salt: bytes) -> str:
    return hmac.new(secret, b"headshot key check:" + salt, hashlib.sha256).hexdigest()


def commit_photos(secret: bytes, photo_sha256: list[str]) -> PhotoCommitments:
    """Commitments to these photos (their SHA-256 digests) under a fresh salt."""
    salt = secrets.token_bytes(16)
    digests = sorted(commitment(secret, salt, digest) for digest in photo_sha256)
    return PhotoCommitments(salt=salt.hex(), key_check=_key_check(secret, salt), commitments=digests)


def key_matches(secret: bytes, record: PhotoCommitments) -> bool:
    return hmac.compare_digest(_key_check(secret, bytes.fromhex(record.salt)), record.key_check)


def photo_sha256(path: Path) -> str:
    """The digest prepare recorded for a photo: SHA-256 of the file's bytes, as given."""
    try:
        return sha256_file(Path(path))
    except OSError as exc:
        raise HeadshotError(f"{path}: cannot read the photo ({exc.strerror or exc})") from None


def matches(secret: bytes, record: PhotoCommitments, digest: str) -> bool:
    expected = commitment(secret, bytes.fromhex(record.salt), digest)
    return any(hmac.compare_digest(expected, value) for value in record.commitments)
