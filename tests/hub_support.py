"""A Hugging Face hub on 127.0.0.1 for download tests: the few routes a model download uses.

huggingface_hub talks to whatever HF_ENDPOINT names, so a process started with
HF_ENDPOINT=http://127.0.0.1:PORT downloads from this server through the libraries' real
code: `GET /api/models/<repo>[/revision/<rev>]` and `/tree/<rev>` (the file list, with sizes) and
`HEAD`/`GET /<repo>/resolve/<rev>/<path>` (each file, with the commit and ETag headers the
hub sends). Large files are sent in chunks with a pause between them, so a download takes
long enough for its progress to be seen.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
import time
from contextlib import contextmanager
from urllib.parse import unquote, urlparse

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _handler(repo: str, files: dict[str, bytes], chunk: int, pause: float):
    class Hub(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _json(self, payload) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _file(self, name: str, with_body: bool) -> None:
            data = files.get(name)
            if data is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if with_body:
                for start in range(0, len(data), chunk):
                    self.wfile.write(data[start : start + chunk])
                    self.wfile.flush()
                    if start + chunk < len(data):
                        time.sleep(pause)

        def _route(self, with_body: bool) -> None:
            path = unquote(urlparse(self.path).path)
            if path in (
                f"/api/models/{repo}",
                *(f"/api/models/{repo}/revision/{r}" for r in ("main", COMMIT)),
            ):
                siblings = [{"rfilename": name, "size": len(data)} for name, data in files.items()]
                return self._json({"id": repo, "sha": COMMIT, "private": False, "siblings": siblings})
            if path in (f"/api/models/{repo}/tree/main", f"/api/models/{repo}/tree/{COMMIT}"):
                entries = [
                    {"type": "file", "path": name, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                    for name, data in files.items()
                ]
                return self._json(entries)
            for revision in ("main", COMMIT):
                prefix = f"/{repo}/resolve/{revision}/"
                if path.startswith(prefix):
                    return self._file(path[len(prefix) :], with_body)
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self._route(with_body=True)

        def do_HEAD(self):
            self._route(with_body=False)

    return Hub


@contextmanager
def local_hub(repo: str, files: dict[str, bytes], chunk: int = 64 * 1024, pause: float = 0.05):
    """Serve `files` as the hub repository `repo`; yields the endpoint URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(repo, files, chunk, pause))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
