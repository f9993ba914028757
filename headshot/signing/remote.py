"""`verify --resolve URL`: turn a watermark identifier into its manifest through a remote
server's C2PA Soft Binding Resolution API (`headshot serve`, or any server speaking it).

Standard library only (urllib): the command line needs no web framework. The facts come
from the manifest bytes the server returns, read the same way as the local store's.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request

import c2pa

from headshot.errors import HeadshotError
from headshot.signing import store, watermark

TIMEOUT_S = 15.0
MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def binding_value(identifier: str) -> str:
    """The API's soft binding value of a watermark identifier: base64 of its 4 bytes."""
    return base64.b64encode(bytes.fromhex(identifier)).decode("ascii")


def _get(url: str, base: str) -> bytes:
    request = urllib.request.Request(url, headers={"User-Agent": "headshot-verify"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310 (http/https checked)
            data = answer.read(MAX_MANIFEST_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise HeadshotError(f"{base}: the resolution server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HeadshotError(f"{base}: cannot reach the resolution server ({reason})") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise HeadshotError(
            f"{base}: the resolution server's answer is larger than {MAX_MANIFEST_BYTES} bytes"
        )
    return data


def remote_resolver(base_url: str, context: c2pa.Context):
    """A verify resolver asking the server at `base_url` (its API is at base_url/v1)."""
    from headshot.signing.verify import read_stored_manifest

    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise HeadshotError(f"{base_url}: --resolve expects an http:// or https:// URL")
    api = base if base.endswith("/v1") else base + "/v1"

    def resolve(identifier: str) -> store.StoreLookup:
        query = urllib.parse.urlencode(
            {"alg": watermark.ALGORITHM, "value": binding_value(identifier), "maxResults": 1}
        )
        try:
            found = json.loads(_get(f"{api}/matches/byBinding?{query}", base)).get("matches") or []
            manifest_id = str(found[0]["manifestId"]) if found else None
        except (ValueError, AttributeError, KeyError, TypeError, IndexError):
            raise HeadshotError(f"{base}: not a Soft Binding Resolution API answer") from None
        if manifest_id is None:
            return store.StoreLookup(found=False, identifier=identifier, source=base)
        manifest = _get(f"{api}/manifests/{urllib.parse.quote(manifest_id, safe=':')}", base)
        return store.StoreLookup(
            found=True,
            identifier=identifier,
            entry=manifest_id,
            source=base,
            manifest=read_stored_manifest(manifest, context),
            manifest_bytes=manifest,
        )

    return resolve
