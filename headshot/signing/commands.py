"""Entry functions of `headshot sign`, `verify`, `check-photo` and `keys init`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from headshot.analysis.image_io import is_photo_name
from headshot.config import read_json_record
from headshot.errors import HeadshotError
from headshot.signing.config import SigningConfig
from headshot.signing.credentials import DEV_NOTICE, create_dev_credentials
from headshot.signing.generation_info import GenerationInfo
from headshot.signing.repository import recover
from headshot.signing.sign import SignedImage, sign_file
from headshot.signing.verify import Verification, VerifyOptions, verify_file
from headshot.storage import unique_names
from headshot.terminal import shown, shown_lines

SIGNABLE = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp"}


def destination_for(source: Path, out: Path | None, image_format: str | None, config: SigningConfig) -> Path:
    """OUT/<name>.<ext>; next to the source (and never over it) as <name>.signed.<ext>."""
    extension = image_format or SIGNABLE.get(source.suffix.lower(), config.output_format)
    if out is None or Path(out).resolve() == source.parent.resolve():
        return source.parent / f"{source.stem}.signed.{extension}"
    return Path(out) / f"{source.stem}.{extension}"


def read_generation_info(path: Path) -> GenerationInfo:
    return read_json_record(path, GenerationInfo, "a JSON object of generation fields")


def run_sign(
    images: list[Path],
    config: SigningConfig,
    out: Path | None = None,
    image_format: str | None = None,
    info_file: Path | None = None,
) -> list[SignedImage]:
    info = read_generation_info(info_file) if info_file is not None else None
    destinations = [destination_for(source, out, image_format, config) for source in images]
    # Two sources with one destination (a/x.png and b/x.png with --out D) would lose one.
    unique_names(((str(s), str(d)) for s, d in zip(images, destinations)), "the signed file")
    recover(config)  # entries of images a killed run never wrote
    for destination in destinations:  # and the temporary files of its interrupted writes
        for leftover in destination.parent.glob(f".{destination.name}.*.tmp"):
            leftover.unlink(missing_ok=True)
    signed = []
    for source, destination in zip(images, destinations):
        result = sign_file(source, destination, info, config)
        mark = f", watermark {result.watermark_id}" if result.watermark_id else ""
        typer.echo(shown(f"{source} -> {result.path} (signed by {result.signer}{mark})"))
        signed.append(result)
    return signed


SCHEMA = "headshot-verify"
SCHEMA_VERSION = 2  # docs/verify-schema.json; version 1 was the bare list of before 2026-12
_STATES = {"Absent": "no C2PA manifest", "Remote": "remote manifest, not fetched"}


def describe(result: Verification) -> str:
    """One line per file: state, disclosure and by what, signer, watermark, store lookup."""
    state = _STATES.get(result.state, result.state)
    if result.state == "Remote" and result.remote_manifest_url:
        state += f" ({result.remote_manifest_url})"
    if result.ai_generated:
        disclosure = f"AI-generated ({', '.join(result.disclosed_by)})"
    else:
        disclosure = "NOT declared AI-generated"
    parts = [f"{result.file}: {state}", disclosure]
    if result.signer:
        parts.append(f"signer: {result.signer}")
    if result.claim_generator:
        parts.append(f"made with: {result.claim_generator}")
    if result.watermark.found:
        parts.append(f"watermark {result.watermark.identifier}")
    else:
        parts.append("no watermark")
    lookup = result.manifest_store
    if lookup is not None:
        if lookup.found and lookup.summary:
            summary = lookup.summary
            generation = summary.get("generation") or {}
            template = f", template {generation['template']}" if generation.get("template") else ""
            parts.append(
                f"manifest store: {summary.get('title')} signed {summary.get('signed_at')} "
                f"by {summary.get('claim_generator')}{template}"
            )
        elif lookup.found and lookup.manifest:  # resolved by a server: the manifest's own facts
            facts = lookup.manifest
            valid = "signature valid" if facts.signature_valid else "signature INVALID"
            parts.append(
                f"resolved by {lookup.source}: {lookup.entry} ({valid}), {facts.title} "
                f"signed by {facts.signer}, made with {facts.claim_generator}"
            )
        elif lookup.source and lookup.source.startswith(("http://", "https://")):
            parts.append(f"not known to {lookup.source}")
        else:
            parts.append("not in the local manifest store")
    if result.checks:
        parts.append(describe_checks(result.checks))
    line = " | ".join(parts)
    errors = [e for e in result.errors if not e.startswith("remote manifest, not fetched")]
    if errors:
        line += "\n  " + "\n  ".join(errors)
    return line


def describe_checks(checks: dict) -> str:
    """The checks a headshot passed before delivery, as a recruiter reads them."""
    words = []
    likeness = checks.get("likeness")
    if isinstance(likeness, dict) and isinstance(likeness.get("relative_distance"), int | float):
        bar = likeness.get("threshold")
        limit = f", delivered only up to {bar:.2f}" if isinstance(bar, int | float) else ""
        words.append(f"likeness {likeness['relative_distance']:.2f} x the subject's own photo spread{limit}")
    audit = checks.get("audit")
    if isinstance(audit, dict):
        flags = [str(flag) for flag in audit.get("flags") or []]
        verdict = f"flagged {', '.join(flags)}" if flags else "no artifact flagged"
        words.append(f"audit {audit.get('status', '?')}: {verdict}")
    version = checks.get("metrics_version")
    suffix = f" (metrics v{version})" if version else ""
    if not words or (isinstance(audit, dict) and audit.get("status") == "no_face" and len(words) == 1):
        # generate measures likeness and artifacts on the face; with none found it records neither.
        return (
            "not checked: no face was found in this image, so how much it looks like the person "
            "and its AI artifacts were not measured" + suffix
        )
    return "checked: " + "; ".join(words) + suffix


def expand_folders(paths: list[Path], recursive: bool = False) -> list[Path]:
    """Files as given; a folder stands for the images in it (and in its subfolders if recursive).

    Inside a folder only files named as images are taken (index.json, .c2pa sidecars and
    hidden files are not); a file named on the command line is always checked.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        found = sorted(
            p for p in (path.rglob("*") if recursive else path.iterdir()) if p.is_file() and is_photo_name(p)
        )
        if not found:
            entries = [p for p in path.iterdir() if not p.name.startswith(".")]
            if not entries:
                raise HeadshotError(f"{path}: the folder is empty: nothing to verify")
            subfolders = not recursive and any(p.is_dir() for p in entries)
            hint = " (add --recursive to look in its subfolders)" if subfolders else ""
            raise HeadshotError(f"{path}: no images in this folder, only {len(entries)} other entries{hint}")
        files += found
    return files


def verify_report(results: list[Verification], options: VerifyOptions) -> dict:
    """The `--json` document (docs/verify-schema.json)."""
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "require_ai": options.require_ai,
        "fetch_remote": options.fetch_remote,
        "passed": all(r.passed for r in results),
        "files": [r.model_dump(mode="json") for r in results],
    }


def run_verify(
    files: list[Path],
    config: SigningConfig,
    as_json: bool,
    options: VerifyOptions,
    recursive: bool = False,
    resolve_url: str | None = None,
) -> list[Verification]:
    """Print per file; raise (exit 1) when any file fails (Invalid, not an image, or with
    require_ai not declared AI-generated). With resolve_url, watermarks are resolved by that
    server's Soft Binding Resolution API instead of the local manifest store."""
    resolver = None
    if resolve_url is not None:
        from headshot.signing.remote import remote_resolver
        from headshot.signing.verify import reading_context

        anchors = [*config.trust_anchors, *options.trust_anchors]
        resolver = remote_resolver(resolve_url, reading_context(anchors))
    paths = expand_folders(files, recursive)
    results = [verify_file(path, config, options=options, resolver=resolver) for path in paths]
    if as_json:
        typer.echo(json.dumps(verify_report(results, options), indent=2))
    else:
        for result in results:  # names and a manifest's texts come from outside: escaped
            typer.echo(shown_lines(describe(result)))
    failed = [r for r in results if not r.passed]
    if failed:
        reasons = ", ".join(f"{r.file} ({_failure_reason(r)})" for r in failed)
        raise HeadshotError(f"{len(failed)} of {len(results)} files failed verification: {reasons}")
    return results


def _failure_reason(result: Verification) -> str:
    if not result.image_readable:
        return "not an image" if any("not an image" in e for e in result.errors) else "unreadable image"
    return "invalid" if result.state == "Invalid" else "not declared AI-generated"


def run_check_photo(
    headshot: Path, photos: list[Path], subject: Path | None, secret: Path | None, config: SigningConfig
) -> None:
    from headshot.signing.commitments import secret_path
    from headshot.signing.photo_check import check_photos

    if subject is not None and secret is not None:
        raise HeadshotError("give --subject or --secret, not both")
    secret_file = secret if secret is not None else (secret_path(subject) if subject is not None else None)
    results = check_photos(headshot, photos, secret_file, config)
    for result in results:
        verdict = (
            "used to train this headshot" if result.used else "NOT one of this headshot's training photos"
        )
        typer.echo(f"{shown(result.photo)}: {verdict}")
    if not all(result.used for result in results):
        raise typer.Exit(1)


def run_keys_init(out: Path, force: bool) -> None:
    existing = [name for name in ("dev-signer-chain.pem", "dev-signer-key.pem") if (out / name).exists()]
    if existing and not force:
        raise HeadshotError(
            f"{out}: development credentials already exist ({', '.join(existing)}); "
            "pass --force to replace them (images signed before stay verifiable as Valid)"
        )
    paths = create_dev_credentials(out)
    typer.echo(f"development credentials ({DEV_NOTICE}) written to {out}:")
    typer.echo(f"  certificate chain  {paths.cert_chain}")
    typer.echo(f"  private key        {paths.private_key} (mode 0600)")
    typer.echo(f"  CA certificate     {paths.ca_certificate}  (trust it with: --trust-anchors)")
