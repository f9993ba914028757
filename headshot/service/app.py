"""The FastAPI application: the Soft Binding Resolution API at /v1, the verify page at /.

The /v1 routes follow the C2PA Soft Binding Resolution API's OpenAPI document (1.0.0):
supportedAlgorithms, matches by binding (GET and POST) and by content, manifests by id.
Everything is read-only. A soft binding value is the base64 of the watermark's 4-byte
identifier; the server answers for the watermark key its signing config names.

CPU work (watermark detection, C2PA validation) runs in worker threads, at most
`detect_workers` at once and never longer than `detect_timeout_s` (then 503), so the event
loop keeps answering; the database is read with parameterised queries only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field

from headshot import __version__
from headshot.errors import HeadshotError
from headshot.service import uploads
from headshot.service.plain_words import explain
from headshot.service.settings import ServiceSettings
from headshot.signing import watermark
from headshot.signing.repository import open_store
from headshot.signing.verify import local_resolver, reading_context, verify_bytes
from headshot.signing.watermark_payload import key_id

SUPPORTED = [watermark.ALGORITHM, *(older.ALGORITHM for older in watermark.LEGACY)]
# urn:c2pa:<uuid>, optionally followed by the claim generator part C2PA 2.x allows.
MANIFEST_ID = re.compile(
    r"^urn:c2pa:[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:[A-Za-z0-9._:-]{1,128})?$"
)
PAGE = Path(__file__).with_name("page.html")
_ERRORS = {
    400: {"description": "Invalid query value"},
    404: {"description": "C2PA Manifest Id not found"},
    413: {"description": "Image larger than the server accepts (bytes or pixels)"},
    415: {"description": "Invalid asset type: not an image"},
    503: {"description": "Busy: the image could not be read in time"},
}


class Algorithm(BaseModel):
    alg: str = Field(examples=[watermark.ALGORITHM])


class AlgorithmList(BaseModel):
    watermarks: list[Algorithm]
    fingerprints: list[Algorithm] = Field(default_factory=list)


class BindingQuery(BaseModel):
    alg: str
    value: str = Field(description="base64 of the watermark's 4-byte identifier")


class Match(BaseModel):
    manifestId: str  # noqa: N815 (the API's field name)
    similarityScore: int = Field(ge=0, le=100)  # noqa: N815


class QueryResult(BaseModel):
    matches: list[Match]


MaxResults = Annotated[int, Query(alias="maxResults", ge=1, le=1_000_000)]


def _identifier(alg: str, value: str) -> str:
    """The watermark identifier a binding value names; 400 for another algorithm or a bad value."""
    if alg not in SUPPORTED:
        raise HTTPException(400, f"unsupported soft binding algorithm {alg[:80]!r}; see supportedAlgorithms")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "value is not valid base64") from None
    if len(raw) != 4:
        raise HTTPException(400, "value must be the base64 of a 4-byte watermark identifier")
    return raw.hex()


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    settings = settings or ServiceSettings()
    repository = open_store(settings.signing)  # imports an old folder store once
    key = key_id(settings.signing.watermark.key)
    app = FastAPI(
        title="headshot manifest repository",
        version=__version__,
        description="C2PA Soft Binding Resolution API (at /v1) over the manifests headshot signed, "
        "and a page at / that checks an image for Content Credentials and the AI-disclosure watermark.",
    )
    limiter: list[anyio.CapacityLimiter] = []  # made on first use, inside the event loop

    async def in_worker(function, *args) -> Any:
        if not limiter:
            limiter.append(anyio.CapacityLimiter(settings.detect_workers))
        try:
            with anyio.fail_after(settings.detect_timeout_s):
                return await anyio.to_thread.run_sync(
                    functools.partial(function, *args), limiter=limiter[0], abandon_on_cancel=True
                )
        except TimeoutError:
            raise HTTPException(503, "busy: the image could not be read in time; try again") from None

    def matches(identifier: str, max_results: int) -> QueryResult:
        try:
            entries = repository.find_by_binding(key, identifier, min(max_results, settings.max_results))
        except HeadshotError as exc:
            raise HTTPException(503, f"manifest store unavailable ({str(exc)[:200]})") from None
        return QueryResult(
            matches=[Match(manifestId=e.manifest_id, similarityScore=100) for e in entries if e.manifest_id]
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The API answers 400 for an invalid query (FastAPI's default would be 422).
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        return JSONResponse({"detail": problems[:500]}, status_code=400)

    v1 = APIRouter(prefix="/v1", responses={400: _ERRORS[400]})

    @v1.get("/services/supportedAlgorithms", tags=["service"], operation_id="getSupportedBindings")
    def supported_algorithms() -> AlgorithmList:
        return AlgorithmList(watermarks=[Algorithm(alg=name) for name in SUPPORTED])

    @v1.get("/matches/byBinding", tags=["query"], operation_id="queryByBinding")
    def query_by_binding(alg: str, value: str, max_results: MaxResults = 10) -> QueryResult:
        return matches(_identifier(alg, value), max_results)

    @v1.post("/matches/byBinding", tags=["query"], operation_id="queryByLargeBinding")
    def query_by_large_binding(query: BindingQuery, max_results: MaxResults = 10) -> QueryResult:
        return matches(_identifier(query.alg, query.value), max_results)

    @v1.post(
        "/matches/byContent",
        tags=["query"],
        operation_id="uploadFile",
        responses={413: _ERRORS[413], 415: _ERRORS[415], 503: _ERRORS[503]},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def query_by_content(
        request: Request,
        alg: str | None = None,
        max_results: MaxResults = 10,
        hint_alg: Annotated[str | None, Query(alias="hintAlg")] = None,
        hint_value: Annotated[str | None, Query(alias="hintValue")] = None,
    ) -> QueryResult:
        if alg is not None and alg not in SUPPORTED:
            raise HTTPException(400, f"unsupported soft binding algorithm {alg[:80]!r}")
        data = await uploads.read_body(request, settings)
        uploads.check_header(data, settings)
        found = await in_worker(_detect, data, settings.signing.watermark.key)
        if found is None:
            hinted = _identifier(hint_alg, hint_value) if hint_alg and hint_value else None
            return matches(hinted, max_results) if hinted else QueryResult(matches=[])
        return matches(found, max_results)

    @v1.get(
        "/manifests/{manifestId}",
        tags=["fetch"],
        operation_id="getManifestById",
        responses={200: {"content": {"application/c2pa": {}}}, 404: _ERRORS[404]},
        response_class=Response,
    )
    def get_manifest(
        manifestId: str,  # noqa: N803 (the API's parameter name)
        return_active: Annotated[bool, Query(alias="returnActiveManifest")] = False,
    ) -> Response:
        manifest_id = manifestId
        if not MANIFEST_ID.match(manifest_id):
            raise HTTPException(400, "invalid C2PA manifest id (expected urn:c2pa:<uuid>)")
        try:
            entry = repository.fetch(manifest_id)
        except HeadshotError as exc:
            raise HTTPException(503, f"manifest store unavailable ({str(exc)[:200]})") from None
        if entry is None or not entry.manifest:
            raise HTTPException(404, "no manifest with this id")
        # headshot's manifest stores hold one manifest (no signed parents): the active one is
        # the whole store, so returnActiveManifest returns the same bytes.
        return Response(entry.manifest, media_type="application/c2pa")

    app.include_router(v1)

    @app.post(
        "/api/verify",
        tags=["page"],
        responses={413: _ERRORS[413], 415: _ERRORS[415], 503: _ERRORS[503]},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def verify_upload(request: Request) -> dict:
        """What the page shows: verify's reading of the upload, in plain words too."""
        data = await uploads.read_body(request, settings)
        uploads.check_header(data, settings)
        result = await in_worker(_verify, data, settings)
        return {"plain": explain(result), "verification": result.model_dump(mode="json")}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/healthz", tags=["service"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    return app


def _detect(data: bytes, key: str) -> str | None:
    try:
        image = uploads.decode(data)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None  # truncated or corrupt pixels: no mark can be read
    found = watermark.detect(image, key=key)
    return found.identifier if found.found else None


def _verify(data: bytes, settings: ServiceSettings):
    config = settings.signing
    resolver = local_resolver(config, reading_context(config.trust_anchors))
    return verify_bytes(data, "upload", config, resolver=resolver)
