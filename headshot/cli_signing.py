"""The `sign`, `verify`, `check-photo` and `keys` commands: parse arguments, call headshot.signing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from headshot.cli_common import ConfigOption, app


@app.command("sign")
def sign_command(
    images: Annotated[list[Path], typer.Argument(help="Images to sign (any format Pillow reads).")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Folder for the signed copies (default: next to each image, NAME.signed.EXT)."
        ),
    ] = None,
    image_format: Annotated[
        str | None, typer.Option("--format", help="jpg, png or webp (default: the source's, else jpg).")
    ] = None,
    info: Annotated[
        Path | None,
        typer.Option("--info", help="JSON with the generation record (base_model, template, seed, ...)."),
    ] = None,
    cert_chain: Annotated[
        Path | None,
        typer.Option("--cert-chain", help="PEM chain: signing certificate first, then intermediates."),
    ] = None,
    private_key: Annotated[
        Path | None, typer.Option("--private-key", help="PEM private key of the certificate.")
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Manifest repository: a database URL (postgresql+psycopg://..., sqlite:///...) "
            "or a SQLite file (default: the config's store, else MANIFEST_STORE/manifests.sqlite).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Sign images with a C2PA manifest declaring them AI-generated, plus IPTC XMP and a watermark.

    Each image is re-encoded from its pixels (no EXIF survives), watermarked with a short
    identifier, declared in XMP (Iptc4xmpExt:DigitalSourceType) and signed; the signed copy
    is written atomically. The manifest repository (--store, configs/signing.yaml: store)
    keeps each manifest under its watermark identifier. Without --cert-chain or a configured
    certificate, development credentials are used (created in outputs/keys/ if missing).
    """
    from headshot.signing.commands import run_sign
    from headshot.signing.config import load_signing_config

    if image_format is not None and image_format not in ("jpg", "png", "webp"):
        raise typer.BadParameter("expected jpg, png or webp", param_hint="--format")
    signing = load_signing_config(
        config, {"cert_chain": cert_chain, "private_key": private_key, "store": store}
    )
    run_sign(images, signing, out=out, image_format=image_format, info_file=info)


@app.command("verify")
def verify_command(
    files: Annotated[
        list[Path],
        typer.Argument(help="Images to check (signed by headshot or any C2PA tool); a folder: its images."),
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document (docs/verify-schema.json).")
    ] = False,
    trust_anchors: Annotated[
        list[Path] | None,
        typer.Option("--trust-anchors", help="PEM file of root certificates to trust (repeatable)."),
    ] = None,
    manifest_store: Annotated[
        Path | None,
        typer.Option(
            "--manifest-store",
            help="Folder of the manifest store (its manifests.sqlite; default: the config's).",
        ),
    ] = None,
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="For a folder, also check the images in its subfolders.")
    ] = False,
    require_ai: Annotated[
        bool, typer.Option("--require-ai", help="Fail any file not declared AI-generated (a studio's check).")
    ] = False,
    fetch_remote: Annotated[
        bool, typer.Option("--fetch-remote", help="Fetch manifests a file points to by URL (network).")
    ] = False,
    resolve: Annotated[
        str | None,
        typer.Option(
            "--resolve",
            help="Resolve watermarks through this server's Soft Binding Resolution API "
            "(`headshot serve`), not the local manifest store.",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Read any image's C2PA manifest, XMP and watermark; say if it is declared AI-generated.

    Per file: validation state (Trusted / Valid / Invalid, or no manifest), whether it is
    declared AI-generated and by what (c2pa, xmp, watermark), the signer, the watermark
    identifier and what the local manifest store knows about it. Exit code 1 when any
    file is Invalid or not an image, and with --require-ai when any is not declared
    AI-generated; a camera photo with a valid manifest of its own passes without it.
    """
    from headshot.signing.commands import run_verify
    from headshot.signing.config import load_signing_config
    from headshot.signing.verify import VerifyOptions

    settings = load_signing_config(config, {"manifest_store": manifest_store})
    options = VerifyOptions(
        require_ai=require_ai, fetch_remote=fetch_remote, trust_anchors=list(trust_anchors or [])
    )
    run_verify(files, settings, as_json, options, recursive=recursive, resolve_url=resolve)


@app.command("check-photo")
def check_photo_command(
    headshot: Annotated[Path, typer.Argument(help="A signed headshot.")],
    photos: Annotated[list[Path], typer.Argument(help="Photos to check against its training photos.")],
    subject: Annotated[
        Path | None,
        typer.Option("--subject", help="The subject's output folder (holds secrets/photo-commitments.key)."),
    ] = None,
    secret: Annotated[
        Path | None, typer.Option("--secret", help="The subject's commitment secret file, if kept elsewhere.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Say, for each photo, whether it was one of the photos that trained this headshot.

    The manifest holds keyed commitments (HMAC-SHA256 under the subject's secret), not
    the photos' hashes: only the holder of the secret can make this check. Exit code 0
    when every photo given was used, 1 when any was not (or on an error).
    """
    from headshot.signing.commands import run_check_photo
    from headshot.signing.config import load_signing_config

    run_check_photo(headshot, photos, subject, secret, load_signing_config(config))


keys_app = typer.Typer(
    help="Signing credentials: development CA and signing certificate.", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")


@keys_app.command("init")
def keys_init_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the credentials.")] = Path(
        "outputs/keys"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace existing development credentials.")] = False,
) -> None:
    """Create development credentials: a local CA and an ES256 signing certificate.

    Writes dev-ca.pem, dev-signer-chain.pem and dev-signer-key.pem (mode 0600). They are
    for development only and on no public trust list: signed images verify as Valid, and
    as Trusted only with --trust-anchors OUT/dev-ca.pem.
    """
    from headshot.signing.commands import run_keys_init

    run_keys_init(out, force)
