"""Deliver the chosen candidates: sign each into headshots/, and write index.json.

`headshots/` only ever receives files written by the signing stage's `sign_image`,
which writes its destination atomically, fully signed or not at all. The new headshots
and index.json are built in a staging folder beside headshots/ (`storage.StagedFolder`)
and swapped in only when every chosen candidate was signed: a run that cannot sign
leaves the earlier headshots and index.json as they were. Headshots of templates this
run did not render, and files of the user's own, are carried over into the new folder.
index.json lists every candidate, delivered or not.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from headshot.analysis.metrics import METRICS_VERSION
from headshot.bounded_io import read_json_object
from headshot.errors import HeadshotError
from headshot.pipelines.generate_config import RankingOptions
from headshot.pipelines.ranking import Candidate
from headshot.records import atomic_write_json
from headshot.signing.commitments import commit_photos
from headshot.signing.generation_info import AuditCheck, CheckResults, GenerationInfo, LikenessCheck
from headshot.signing.manifest import public_model_name
from headshot.storage import final_path

INDEX_FILE = "index.json"


@dataclass(frozen=True)
class Signer:
    """The signing stage bound to one signing config."""

    # sign(image, destination, info) -> SignedImage; raises HeadshotError when it cannot sign.
    sign: Callable[[Image.Image, Path, GenerationInfo], object]
    # verify(path) -> Verification (.state Absent/Invalid/Valid/Trusted, .ai_generated).
    verify: Callable[[Path], object]
    store: object = None  # its SigningConfig: the manifest store settled after the swap (store.recover)
    commit_photos: bool = True  # the config puts photo commitments into manifests


@dataclass(frozen=True)
class Provenance:
    """What every delivered headshot's manifest says of the subject's photos and the checks."""

    photo_sha256: list[str]  # of the accepted training photos
    secret: bytes | None  # the subject's commitment secret; None: no photo ingredients
    options: RankingOptions  # the likeness bar and flag policy the checks were made under


def load_signer(signing_config: Path | None, outputs_root: Path, store: str | None = None) -> Signer:
    """The signing stage's `sign_image` and `verify_file`, bound to a signing config.

    Without a config file, development credentials are created (once) in
    OUTPUTS/keys and the manifest store is OUTPUTS/manifest-store, so a first run and
    the demo still deliver signed, verifiable images.
    """
    try:
        from headshot.signing.api import (
            VerifyOptions,
            ensure_dev_credentials,
            load_signing_config,
            sign_image,
            verify_file,
        )
    except ImportError as exc:
        raise HeadshotError(
            f"the signing stage is not installed in this build ({exc.name} is missing), "
            "and unsigned images are never delivered"
        ) from None
    repository = {"store": store} if store else {}
    if signing_config is None:
        keys = Path(outputs_root) / "keys"
        config = load_signing_config(
            None,
            {"dev_credentials": keys, "manifest_store": Path(outputs_root) / "manifest-store", **repository},
        )
        ensure_dev_credentials(keys)
    else:
        config = load_signing_config(Path(signing_config), repository or None)
        if config.cert_chain is None and config.signer_callback is None:
            ensure_dev_credentials(config.dev_credentials)
    return Signer(
        sign=lambda image, destination, info: sign_image(image, destination, info, config),
        # Delivery requires the disclosure: what `headshot verify --require-ai` checks.
        verify=lambda path: verify_file(path, config, options=VerifyOptions(require_ai=True)),
        store=config,
        commit_photos=config.subject_photo_commitments,
    )


def headshot_name(candidate: Candidate) -> str:
    return f"{candidate.template}-{candidate.key.split('/', 1)[1]}.jpg"


def check_results(candidate: Candidate, options: RankingOptions) -> CheckResults:
    """The candidate's likeness and audit results as its manifest declares them."""
    likeness = audit = None
    if candidate.likeness:
        likeness = LikenessCheck(
            relative_distance=candidate.likeness["relative"],
            threshold=options.max_relative_distance,
            same_person=candidate.likeness.get("same_person"),
        )
    if candidate.audit:
        audit = AuditCheck(
            status=candidate.audit["status"],
            flags=candidate.audit["flags"],
            z=candidate.audit["z"],
            artifact_score=candidate.audit["artifact_score"],
            policy=options.flagged,
        )
    return CheckResults(metrics_version=METRICS_VERSION, likeness=likeness, audit=audit)


def generation_info(candidate: Candidate, provenance: Provenance) -> GenerationInfo:
    sidecar = candidate.sidecar
    photos = None
    if provenance.secret is not None and provenance.photo_sha256:
        photos = commit_photos(provenance.secret, provenance.photo_sha256)  # fresh salt each
    return GenerationInfo(
        base_model=public_model_name(sidecar["base_model"]),  # a local path: its name only
        base_model_sha256=sidecar["base_model_sha256"],
        lora_sha256=sidecar["lora_sha256"],
        template=candidate.template,
        seed=candidate.seed,
        family=sidecar.get("family"),
        # The signing config decides whether prompts enter the manifest (opt-in).
        prompt=sidecar.get("prompt"),
        negative_prompt=sidecar.get("negative_prompt"),
        subject_photos=photos,
        checks=check_results(candidate, provenance.options),
    )


def deliver(
    candidates: list[Candidate],
    subject_root: Path,
    headshots: Path,
    signer: Signer | None,
    signer_error: str | None,
    provenance: Provenance,
) -> list[Candidate]:
    """Sign every selected candidate into headshots/; returns those delivered."""
    headshots.mkdir(parents=True, exist_ok=True)
    delivered = []
    for candidate in candidates:
        if not candidate.selected:
            continue
        destination = headshots / headshot_name(candidate)
        if signer is None:
            candidate.dropped, candidate.detail = "signing_failed", signer_error
            continue
        try:
            with Image.open(subject_root / candidate.render) as image:
                info = generation_info(candidate, provenance)
                signed = signer.sign(image.convert("RGB"), destination, info)
            candidate.signature = _checked_signature(signer, destination, signed)
        except HeadshotError as exc:
            candidate.dropped, candidate.detail = "signing_failed", str(exc)
            continue
        candidate.delivered = final_path(destination).relative_to(subject_root).as_posix()
        delivered.append(candidate)
    return delivered


def _checked_signature(signer: Signer, destination: Path, signed) -> dict:
    """Read the signed file back; one that does not verify as AI-generated is removed."""
    verification = signer.verify(destination)
    state = str(getattr(verification, "state", "Absent"))
    if state not in ("Valid", "Trusted") or not getattr(verification, "ai_generated", False):
        destination.unlink(missing_ok=True)
        raise HeadshotError(f"the signed file did not verify as AI-generated (state {state}); removed")
    return {
        "verification": state,
        "sha256": getattr(signed, "sha256", None),
        "manifest_label": getattr(signed, "manifest_label", None),
        "watermark_id": getattr(signed, "watermark_id", None),
        "signer": getattr(signed, "signer", None),
    }


def read_previous_index(headshots: Path) -> dict | None:
    """The index.json an earlier run delivered with, read before anything is signed."""
    path = headshots / INDEX_FILE
    if not path.exists():
        return None
    index = read_json_object(path)
    candidates = index.get("candidates", [])
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        raise HeadshotError(f"{path}: field 'candidates': expected a list of candidate records")
    for candidate in candidates:
        delivered = candidate.get("delivered")
        if delivered is not None and not isinstance(delivered, str):
            raise HeadshotError(f"{path}: field 'candidates.delivered': expected a file name")
    return index


def carry_over(headshots: Path, staging: Path, previous: dict | None, templates: set[str]) -> list[dict]:
    """Bring into `staging` what this run does not replace; returns the kept index records.

    Replaced: index.json and the headshots the previous index lists as delivered from the
    templates rendered now. Kept: headshots of other templates (`-t studio-grey` does not
    delete the office ones) and every file headshot did not write.
    """
    if not headshots.is_dir():
        return []
    records = (previous or {}).get("candidates", [])
    kept = [c for c in records if c.get("template") not in templates]
    replaced = {Path(c["delivered"]).name for c in records if c.get("delivered") and c not in kept}
    for path in sorted(headshots.iterdir()):
        if (
            path.name == INDEX_FILE
            or path.name in replaced
            or not path.is_file()
            or path.name.startswith(".")
        ):
            continue
        try:
            os.link(path, staging / path.name)  # no copy: the bytes stay where they are
        except OSError:
            shutil.copy2(path, staging / path.name)
    return kept


def write_index(
    headshots: Path, candidates: list[Candidate], summary: dict, kept: list[dict] | None = None
) -> Path:
    """index.json: this run's candidates and the `kept` records of templates it did not render."""
    path = headshots / INDEX_FILE
    ordered = sorted(candidates, key=lambda c: (c.template, c.rank is None, c.rank or 0, c.key))
    records = sorted(
        [c.as_record() for c in ordered] + list(kept or []),
        key=lambda r: (str(r.get("template")), r.get("rank") is None, r.get("rank") or 0, str(r.get("key"))),
    )
    counts: dict[str, int] = {"candidates": len(records), "delivered": 0}
    for record in records:
        if record.get("delivered"):
            counts["delivered"] += 1
        elif record.get("dropped"):
            counts[record["dropped"]] = counts.get(record["dropped"], 0) + 1
    atomic_write_json(path, {**summary, "counts": counts, "candidates": records})
    return path
