"""`headshot serve` under load, and signing with the database store versus the folder store.

1. byContent: a stripped (metadata-free, re-encoded) 1024x1024 JPEG copy of a signed headshot
   posted by 8 concurrent clients to a real uvicorn server on 127.0.0.1: lookups per second and
   p50 / p95 latency. Every answer is checked to name the right manifest.
2. byBinding: the same with the watermark identifier as the query (8 clients).
3. Signing time per image (sign_file of the 1024x1024 portrait, median of --runs) in this
   checkout (database store: SQLite) and, with --baseline PATH, in another checkout whose
   headshot package still has the folder store (one run each, the same machine, interleaved).

Bounded: --content-requests and --binding-requests in total, each client's request times out.
Usage: python bench/bench_service.py [--content-requests 48] [--binding-requests 800]
       [--runs 5] [--baseline /path/to/checkout-with-folder-store]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from headshot.samples import grace_hopper  # noqa: E402
from headshot.signing import watermark  # noqa: E402
from headshot.signing.config import SigningConfig  # noqa: E402
from headshot.signing.credentials import create_dev_credentials  # noqa: E402
from headshot.signing.sign import sign_image  # noqa: E402
from tests.service_support import start_server  # noqa: E402

CLIENTS = 8

# Signing loop run in a child process, so that another checkout's package can be timed too.
_SIGN_LOOP = """
import json, sys, tempfile, time
from pathlib import Path
from headshot.samples import grace_hopper
from headshot.signing.config import SigningConfig
from headshot.signing.credentials import create_dev_credentials
from headshot.signing.sign import sign_file
root = Path(tempfile.mkdtemp())
keys = create_dev_credentials(root / "keys")
config = SigningConfig(cert_chain=keys.cert_chain, private_key=keys.private_key, manifest_store=root / "ms")
grace_hopper().resize((1024, 1024)).save(root / "in.png")
times = []
for i in range(int(sys.argv[1]) + 1):  # the first one warms c2pa up and is not counted
    start = time.perf_counter()
    sign_file(root / "in.png", root / f"out{i}.jpg", None, config)
    times.append(time.perf_counter() - start)
print(json.dumps(times[1:]))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def load(url: str, requests: int, call) -> dict:
    latencies: list[float] = []

    def one(i: int) -> bool:
        start = time.perf_counter()
        right = call(i)
        latencies.append(time.perf_counter() - start)
        return right

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        answers = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - start
    assert all(answers), f"{answers.count(False)} wrong answers"
    return {
        "requests": requests,
        "per_second": round(requests / wall, 1),
        "p50_ms": round(1000 * percentile(latencies, 0.5), 1),
        "p95_ms": round(1000 * percentile(latencies, 0.95), 1),
    }


def sign_times(pythonpath: Path, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    done = subprocess.run(
        [sys.executable, "-c", _SIGN_LOOP, str(runs)], env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise SystemExit(f"signing in {pythonpath} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--content-requests", type=int, default=48)
    parser.add_argument("--binding-requests", type=int, default=800)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="a checkout whose headshot has the folder store")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-service-"))
    keys = create_dev_credentials(root / "keys")
    config = SigningConfig(
        cert_chain=keys.cert_chain, private_key=keys.private_key, manifest_store=root / "ms"
    )
    signed = sign_image(grace_hopper().resize((1024, 1024)), root / "headshot.jpg", None, config)
    with Image.open(signed.path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=85)  # no metadata: a stripped copy
    copy = buffer.getvalue()
    (root / "signing.yaml").write_text(
        f"cert_chain: {keys.cert_chain}\nprivate_key: {keys.private_key}\nmanifest_store: {root / 'ms'}\n"
    )
    server = start_server(root / "signing.yaml")
    value = base64.b64encode(bytes.fromhex(signed.watermark_id)).decode()
    try:
        with httpx.Client(
            base_url=server.url, timeout=120, limits=httpx.Limits(max_connections=CLIENTS)
        ) as http:

            def by_content(_i: int) -> bool:
                answer = http.post(
                    "/v1/matches/byContent", content=copy, headers={"content-type": "image/jpeg"}
                )
                return answer.json()["matches"][0]["manifestId"] == signed.manifest_label

            def by_binding(_i: int) -> bool:
                query = {"alg": watermark.ALGORITHM, "value": value}
                answer = http.get("/v1/matches/byBinding", params=query)
                return answer.json()["matches"][0]["manifestId"] == signed.manifest_label

            by_content(0)
            content = load(server.url, args.content_requests, by_content)
            binding = load(server.url, args.binding_requests, by_binding)
    finally:
        server.stop()
    print(f"byContent 1024 px, {CLIENTS} clients: {content}")
    print(f"byBinding, {CLIENTS} clients: {binding}")

    database = statistics.median(sign_times(ROOT, args.runs))
    print(f"sign_file 1024 px, database store (SQLite): median {database:.3f} s")
    if args.baseline is not None:
        folder = statistics.median(sign_times(args.baseline, args.runs))
        print(f"sign_file 1024 px, folder store ({args.baseline}): median {folder:.3f} s")
        print(f"database / folder: {database / folder:.2f}x")


if __name__ == "__main__":
    main()
