"""`headshot check-photo`: was this photo one of the training photos of that headshot?

The studio's answer to "prove which of my photos you used": the headshot's manifest holds
keyed commitments to its training photos (signing/commitments.py); with the subject's
secret, each given photo's SHA-256 is committed under the manifest's salt and looked up.
Only a manifest whose signature holds is believed (a changed file could carry any list).
Headshots signed before 2026-12 hold plain `sha256:` ingredients, checked as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from headshot.errors import HeadshotError
from headshot.signing import commitments
from headshot.signing.commitments import PhotoCommitments
from headshot.signing.config import SigningConfig
from headshot.signing.manifest import SUBJECT_PHOTOS_LABEL

_LEGACY_PREFIX = "sha256:"


@dataclass(frozen=True)
class PhotoMatch:
    photo: Path
    used: bool


@dataclass(frozen=True)
class ManifestPhotos:
    """The photo ingredients of one headshot's active manifest."""

    keyed: PhotoCommitments | None  # current headshots
    plain_sha256: list[str]  # headshots signed before 2026-12


def read_manifest_photos(headshot: Path, config: SigningConfig) -> ManifestPhotos:
    """The photo commitments of a validly signed headshot; a clear error otherwise."""
    from headshot.signing.verify import read_active_manifest, reading_context

    headshot = Path(headshot)
    if not headshot.is_file():
        raise HeadshotError(f"{headshot}: file not found")
    state, manifest, errors, _ = read_active_manifest(
        headshot.read_bytes(), reading_context(config.trust_anchors)
    )
    if state == "Absent" or not manifest:
        raise HeadshotError(f"{headshot}: no C2PA manifest, so no record of its training photos")
    if state not in ("Valid", "Trusted"):
        reason = "; ".join(errors) or state
        raise HeadshotError(
            f"{headshot}: the manifest does not validate ({reason}), so its photo list proves nothing"
        )
    instance_ids = [str(i.get("instance_id", "")) for i in manifest.get("ingredients") or []]
    keyed_values = [
        i[len(commitments.INSTANCE_PREFIX) :]
        for i in instance_ids
        if i.startswith(commitments.INSTANCE_PREFIX)
    ]
    plain = [i[len(_LEGACY_PREFIX) :] for i in instance_ids if i.startswith(_LEGACY_PREFIX)]
    keyed = None
    if keyed_values:
        declared = next(
            (
                a.get("data") or {}
                for a in manifest.get("assertions", [])
                if a.get("label") == SUBJECT_PHOTOS_LABEL
            ),
            None,
        )
        if not declared or declared.get("alg") != commitments.ALGORITHM or "salt" not in declared:
            raise HeadshotError(
                f"{headshot}: photo commitments without their {SUBJECT_PHOTOS_LABEL} assertion "
                f"(or of an algorithm other than {commitments.ALGORITHM}); cannot check them"
            )
        try:
            keyed = PhotoCommitments(
                alg=declared["alg"],
                version=int(declared.get("version", 1)),
                salt=str(declared["salt"]),
                key_check=str(declared.get("key_check", "")),
                commitments=keyed_values,
            )
        except ValueError:
            raise HeadshotError(f"{headshot}: {SUBJECT_PHOTOS_LABEL}: salt or key_check malformed") from None
    if keyed is None and not plain:
        raise HeadshotError(
            f"{headshot}: the manifest lists no training photos (signed with subject_photo_commitments off?)"
        )
    return ManifestPhotos(keyed, plain)


def check_photos(
    headshot: Path, photos: list[Path], secret_file: Path | None, config: SigningConfig
) -> list[PhotoMatch]:
    """For each photo: was it one of the headshot's training photos?"""
    recorded = read_manifest_photos(headshot, config)
    secret = None
    if recorded.keyed is not None:
        if secret_file is None:
            raise HeadshotError(
                f"{headshot}: its photo commitments are keyed; give --subject (its folder) or --secret"
            )
        secret = commitments.read_secret(secret_file)
        if not commitments.key_matches(secret, recorded.keyed):
            raise HeadshotError(
                f"{secret_file}: not the secret this headshot's photo commitments were made with "
                "(another subject's, or a replaced one)"
            )
    results = []
    for photo in map(Path, photos):
        digest = commitments.photo_sha256(photo)
        if recorded.keyed is not None:
            used = commitments.matches(secret, recorded.keyed, digest)
        else:
            used = digest in recorded.plain_sha256
        results.append(PhotoMatch(photo, used))
    return results
