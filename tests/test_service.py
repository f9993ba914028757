"""`headshot serve`: the Soft Binding Resolution API (FastAPI's test client and a real uvicorn
process), schemathesis against the server's own OpenAPI, dozens of concurrent lookups, a
restart on the same store, `verify --resolve`, and the page in a real headless Chromium.

One signed repository and one server process per module.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from headshot.samples import grace_hopper
from headshot.service.app import create_app
from headshot.service.settings import ServiceSettings
from headshot.signing import watermark
from headshot.signing.config import SigningConfig
from headshot.signing.credentials import create_dev_credentials
from headshot.signing.generation_info import AuditCheck, CheckResults, GenerationInfo, LikenessCheck
from headshot.signing.sign import sign_image
from headshot.signing.verify import verify_bytes
from tests.generate_support import subprocess_env
from tests.service_support import headless_chromium, plain_photos, start_server, stripped_copy

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of `make test-fast`

ALG = watermark.ALGORITHM


def value(identifier: str) -> str:
    return base64.b64encode(bytes.fromhex(identifier)).decode()


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    """Two signed headshots in a SQLite repository, their stripped copies, and a config file."""
    root = tmp_path_factory.mktemp("served")
    keys = create_dev_credentials(root / "keys")
    config = SigningConfig(
        cert_chain=keys.cert_chain, private_key=keys.private_key, manifest_store=root / "ms"
    )
    portrait = grace_hopper()
    # The first carries the checks generate records (likeness, audit): the page shows them.
    checks = CheckResults(
        metrics_version=3,
        likeness=LikenessCheck(relative_distance=0.82, threshold=1.2),
        audit=AuditCheck(status="passed", flags=[], policy="refuse"),
    )
    info = GenerationInfo(
        base_model="sdxl", base_model_sha256="a" * 64, template="studio-grey", seed=1, checks=checks
    )
    signed = [
        sign_image(
            portrait.crop(box).resize((384, 384)),
            root / f"headshot-{i}.jpg",
            info if i == 0 else None,
            config,
        )
        for i, box in enumerate([(0, 44, 512, 556), (20, 60, 480, 520)])
    ]
    copies = []
    for image in signed:
        copy = root / f"{image.path.stem}-uploaded.jpg"
        copy.write_bytes(stripped_copy(image.path))
        copies.append(copy)
    config_file = root / "signing.yaml"
    config_file.write_text(
        f"cert_chain: {keys.cert_chain}\nprivate_key: {keys.private_key}\nmanifest_store: {root / 'ms'}\n"
    )
    return config, config_file, signed, copies


@pytest.fixture(scope="module")
def client(repository):
    return TestClient(create_app(ServiceSettings(signing=repository[0])))


class _Current:
    """The module's one server process (the restart test replaces it)."""

    def __init__(self, repository):
        self.repository = repository
        self.running = start_server(repository[1])

    @property
    def url(self) -> str:
        return self.running.url

    def restart(self) -> None:
        self.running.stop()
        self.running = start_server(self.repository[1])


@pytest.fixture(scope="module")
def server(repository):
    current = _Current(repository)
    yield current
    current.running.stop()


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming width x height whose only pixel data is a few compressed bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def test_the_api_answers_as_the_soft_binding_resolution_spec_says(client, repository):
    _, _, signed, _ = repository
    assert client.get("/v1/services/supportedAlgorithms").json()["watermarks"][0] == {"alg": ALG}
    for image in signed:
        expected = [{"manifestId": image.manifest_label, "similarityScore": 100}]
        by_get = client.get("/v1/matches/byBinding", params={"alg": ALG, "value": value(image.watermark_id)})
        assert by_get.status_code == 200 and by_get.json()["matches"] == expected
        by_post = client.post(
            "/v1/matches/byBinding",
            params={"maxResults": 1},
            json={"alg": ALG, "value": value(image.watermark_id)},
        )
        assert by_post.json()["matches"] == expected
        manifest = client.get(
            f"/v1/manifests/{image.manifest_label}", params={"returnActiveManifest": "true"}
        )
        assert manifest.status_code == 200 and manifest.headers["content-type"] == "application/c2pa"
        assert image.manifest_label.encode() in manifest.content
    assert client.get("/v1/matches/byBinding", params={"alg": ALG, "value": value("00000000")}).json() == {
        "matches": []
    }
    bad = [
        client.get("/v1/matches/byBinding", params={"alg": ALG, "value": "not base64!"}),
        client.get("/v1/matches/byBinding", params={"alg": ALG, "value": value("0011")}),
        client.get("/v1/matches/byBinding", params={"alg": "other.alg.1", "value": value("00112233")}),
        client.get("/v1/matches/byBinding", params={"alg": ALG, "value": value("00112233"), "maxResults": 0}),
        client.get("/v1/matches/byBinding", params={"alg": ALG}),
        client.get("/v1/manifests/urn:c2pa:x' OR '1'='1"),
    ]
    assert [r.status_code for r in bad] == [400] * 6
    assert client.get("/v1/manifests/..%2F..%2Fetc%2Fpasswd").status_code == 404  # no such route
    assert client.get("/v1/manifests/urn:c2pa:00000000-0000-0000-0000-000000000000").status_code == 404
    spec = client.get("/openapi.json").json()
    assert {"/v1/services/supportedAlgorithms", "/v1/matches/byBinding", "/v1/matches/byContent"} <= set(
        spec["paths"]
    )
    assert "/v1/manifests/{manifestId}" in spec["paths"]


def test_uploads_are_limited_before_decoding_and_bad_ones_are_not_errors(client, repository):
    _, _, _, copies = repository

    def upload(body: bytes, content_type: str = "image/jpeg", to=client) -> httpx.Response:
        return to.post("/v1/matches/byContent", content=body, headers={"content-type": content_type})

    huge = upload(png_header(60000, 60000), "image/png")
    assert huge.status_code == 413 and "pixels" in huge.json()["detail"]
    assert len(png_header(60000, 60000)) < 200
    wide = upload(png_header(9000, 5000), "image/png")  # 45 Mpx: under Pillow's guard, over ours
    assert wide.status_code == 413 and "9000x5000" in wide.json()["detail"]
    assert upload(b"hello").status_code == 415
    assert upload(copies[0].read_bytes(), "text/plain").status_code == 415
    assert upload(copies[0].read_bytes()[:3000]).status_code == 200  # truncated: no mark, no error
    small = TestClient(create_app(ServiceSettings(signing=repository[0], max_upload_bytes=1000)))
    assert upload(copies[0].read_bytes(), to=small).status_code == 413


def lookups(url: str, repository) -> list[list[str]]:
    """Every stripped copy and plain photo by content, every identifier by binding: the answers."""
    _, _, signed, copies = repository
    with httpx.Client(base_url=url, timeout=60) as http:
        answers = []
        for body in [*(c.read_bytes() for c in copies), *plain_photos()]:
            found = http.post("/v1/matches/byContent", content=body, headers={"content-type": "image/jpeg"})
            answers.append([m["manifestId"] for m in found.json()["matches"]])
        for image in signed:
            found = http.get("/v1/matches/byBinding", params={"alg": ALG, "value": value(image.watermark_id)})
            answers.append([m["manifestId"] for m in found.json()["matches"]])
    return answers


def expected_answers(repository) -> list[list[str]]:
    signed = repository[2]
    labels = [[image.manifest_label] for image in signed]
    return [*labels, [], [], *labels]


def test_a_real_server_resolves_stripped_copies_and_matches_nothing_else(server, repository):
    assert lookups(server.url, repository) == expected_answers(repository)


def test_dozens_of_concurrent_lookups_all_answer_right(server, repository):
    _, _, signed, copies = repository
    bodies = [(copies[i % 2].read_bytes(), signed[i % 2].manifest_label) for i in range(8)]

    def by_content(item):
        body, label = item
        answer = httpx.post(
            f"{server.url}/v1/matches/byContent",
            content=body,
            headers={"content-type": "image/jpeg"},
            timeout=120,
        )
        return answer.json()["matches"][0]["manifestId"] == label

    def by_binding(i: int) -> bool:
        image = signed[i % 2]
        answer = httpx.get(
            f"{server.url}/v1/matches/byBinding",
            params={"alg": ALG, "value": value(image.watermark_id)},
            timeout=60,
        )
        return answer.json()["matches"][0]["manifestId"] == image.manifest_label

    with ThreadPoolExecutor(max_workers=24) as pool:
        content = list(pool.map(by_content, bodies))
        binding = list(pool.map(by_binding, range(40)))
    assert all(content) and len(content) == 8
    assert all(binding) and len(binding) == 40


def test_schemathesis_finds_no_server_error(server, tmp_path):
    tool = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [
            str(tool),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "8",
            "--request-timeout",
            "30",
            "--seed",
            "26",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env={**subprocess_env(), "SCHEMATHESIS_HOOKS": ""},
        cwd=tmp_path,  # its example database (.schemathesis/) stays out of the checkout
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_a_restarted_server_on_the_same_store_answers_the_same(server, repository):
    before = lookups(server.url, repository)
    server.restart()
    assert lookups(server.url, repository) == before == expected_answers(repository)


def test_verify_resolve_gives_the_same_facts_as_the_local_store(server, repository, run_cli):
    config, config_file, signed, copies = repository
    local = verify_bytes(copies[0].read_bytes(), "copy.jpg", config)
    result = run_cli("verify", copies[0], "--resolve", server.url, "--json", "--config", config_file)
    assert result.code == 0, result.err
    (remote,) = json.loads(result.out)["files"]
    assert remote["manifest_store"]["source"] == server.url
    assert remote["manifest_store"]["entry"] == signed[0].manifest_label == local.manifest_store.entry
    assert remote["manifest_store"]["manifest"] == local.manifest_store.manifest.model_dump(mode="json")
    assert remote["manifest_store"]["manifest"]["ai_generated"] is True
    unreachable = run_cli("verify", copies[0], "--resolve", "http://127.0.0.1:9", "--config", config_file)
    assert (
        unreachable.code == 1 and "http://127.0.0.1:9: cannot reach the resolution server" in unreachable.err
    )


@pytest.fixture(scope="module")
def browser():
    with headless_chromium() as launched:
        yield launched


def check_in_page(browser, url: str, image: Path):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    page.goto(url)
    page.set_input_files("#picker", str(image))
    page.wait_for_function("document.getElementById('result').dataset.verdict")
    return page


def test_the_page_shows_a_stripped_headshot_as_ai_generated_with_its_manifest(
    browser, server, repository, tmp_path
):
    _, _, signed, copies = repository
    page = check_in_page(browser, server.url, copies[0])
    assert page.get_attribute("#result", "data-verdict") == "ai"
    assert page.inner_text("#badge").lower() == "ai-generated"
    text = page.inner_text("#result")
    assert "Content Credentials were removed" in text and "watermark was found" in text
    assert signed[0].manifest_label in text and "headshot-0.jpg" in text
    assert "its signature checks out" in text
    assert "likeness 0.82 x the subject's own photo spread" in text and "no artifact flagged" in text
    shots = Path(os.environ.get("HEADSHOT_SCREENSHOTS", tmp_path))
    page.screenshot(path=str(shots / "verify-page.png"), full_page=True)
    page.close()


def test_the_page_shows_a_plain_photo_as_having_no_credentials(browser, server, tmp_path):
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(plain_photos()[0])
    page = check_in_page(browser, server.url, photo)
    assert page.get_attribute("#result", "data-verdict") == "none"
    text = page.inner_text("#result")
    assert page.inner_text("#badge").lower() == "no credentials found"
    assert "No Content Credentials and no AI-disclosure watermark" in text
    assert "it is not shown to be AI-generated" in text and "Declared AI-generated" not in text
    page.close()
