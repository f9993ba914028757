"""Real components for the repository and server tests: a PostgreSQL server started from its
binaries, a `headshot serve` process, and signed headshots with their stripped copies.

Nothing is mocked: the database is a real SQLite file or a real PostgreSQL server (initdb +
pg_ctl into a temporary folder, as the `postgres` user when the tests run as root), the
server a real uvicorn process on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from headshot.samples import grace_hopper
from tests.generate_support import subprocess_env


def _postgres_bin() -> Path:
    """The newest installed PostgreSQL server's binaries (Debian's layout), or $HEADSHOT_TEST_POSTGRES_BIN."""
    if os.environ.get("HEADSHOT_TEST_POSTGRES_BIN"):
        return Path(os.environ["HEADSHOT_TEST_POSTGRES_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    return found[-1].parent if found else Path("/usr/lib/postgresql/15/bin")


POSTGRES_BIN = _postgres_bin()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def missing_component(message: str) -> None:
    """Skip a test whose real component is not installed here; in CI (where `make test` installs
    it) its absence is a failure, so these tests can never pass by not running."""
    if os.environ.get("CI"):
        pytest.fail(f"{message}; in CI `make test` must install it")
    pytest.skip(message)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's; `make test` installs it
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def headless_chromium():
    """The real browser, driven by Playwright; its absence skips here and fails in CI."""
    if not CHROMIUM.is_file():
        missing_component("Chromium is not installed (make test installs it: apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def postgres_server():
    """A throw-away PostgreSQL server on 127.0.0.1; yields its SQLAlchemy URL."""
    if not (POSTGRES_BIN / "initdb").is_file():
        missing_component(f"no PostgreSQL server binaries in {POSTGRES_BIN} (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="headshot-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the server as `postgres`
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()

    def run(*command: str) -> None:
        subprocess.run([*as_user, *command], check=True, capture_output=True, timeout=120)

    run(str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "headshot", "--auth=trust", "-E", "UTF8", "-N")
    options = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off"
    run(str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://headshot@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(POSTGRES_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Server:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


def start_server(config: Path, store: str | None = None) -> Server:
    """`headshot serve` in a child process on a free port, once it answers /healthz."""
    port = free_port()
    args = ["serve", "--config", str(config), "--port", str(port)] + (["--store", store] if store else [])
    # The `serve` command through the CLI app, without main()'s library-notice filters (they
    # import diffusers: seconds per start that a server never needs).
    launcher = "import sys; from headshot.cli import app; app(sys.argv[1:], prog_name='headshot')"
    process = subprocess.Popen(
        [sys.executable, "-c", launcher, *args],
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"headshot serve exited {process.returncode}: {process.stderr.read()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return Server(url, process)
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise AssertionError("headshot serve did not answer within 60 s")


def jpeg_bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def stripped_copy(signed: Path) -> bytes:
    """What a social network makes of a signed headshot: cropped, resized, recompressed,
    every metadata block gone."""
    with Image.open(signed) as image:
        pixels = image.convert("RGB")
    width, height = pixels.size
    cropped = pixels.crop((width // 12, height // 12, width - width // 16, height - height // 20))
    resized = cropped.resize((int(cropped.width * 0.8), int(cropped.height * 0.8)), Image.LANCZOS)
    return jpeg_bytes(resized, 80)


def plain_photos() -> list[bytes]:
    """Unsigned photos, plain and edited: they must match nothing."""
    photo = grace_hopper()
    edited = photo.rotate(3, expand=False).filter(ImageFilter.UnsharpMask()).resize((400, 480))
    return [jpeg_bytes(photo, 90), jpeg_bytes(edited, 75)]
