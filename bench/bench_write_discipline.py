"""What the write discipline costs: the fingerprint cache's re-hash, and a staged atomic write.

1. A base model's fingerprint from the cache (size, mtime, ctime, inode all unchanged) vs the
   re-hash that anything changing the ctime costs (chmod, a copy, a restore): MB/s and the ratio.
2. atomic_write_bytes (temporary file, fsync, rename) vs a plain write of the same bytes.

    python bench/bench_write_discipline.py [--mb 256]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _seconds(action, repeat: int = 1) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        action()
    return (time.perf_counter() - started) / repeat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=256, help="size of the fake weight file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["HEADSHOT_CACHE"] = str(Path(tmp) / "cache")
        from headshot.models.loading import fingerprint_path
        from headshot.records import atomic_write_bytes

        weights = Path(tmp) / "model.safetensors"
        weights.write_bytes(os.urandom(1 << 20) * args.mb)
        first = _seconds(lambda: fingerprint_path(weights))
        cached = _seconds(lambda: fingerprint_path(weights), repeat=20)
        weights.chmod(0o640)  # changes the ctime only: one re-hash
        rehash = _seconds(lambda: fingerprint_path(weights))
        print(f"fingerprint of {args.mb} MB: first {first:.3f} s ({args.mb / first:.0f} MB/s)")
        print(f"  from the cache     {cached * 1000:.2f} ms  ({first / cached:.0f}x faster)")
        print(f"  after a chmod      {rehash:.3f} s  (re-hashed: {rehash / cached:.0f}x the cached lookup)")

        data = os.urandom(1 << 20)  # about a signed 1024 px JPEG
        plain = Path(tmp) / "plain.bin"
        staged = Path(tmp) / "staged.bin"
        write = _seconds(lambda: plain.write_bytes(data), repeat=50)
        atomic = _seconds(lambda: atomic_write_bytes(staged, data), repeat=50)
        print(f"1 MB write: plain {write * 1000:.2f} ms, atomic (tmp, fsync, rename) {atomic * 1000:.2f} ms")
        print(f"  ratio {atomic / write:.1f}x (the fsync is most of it)")


if __name__ == "__main__":
    main()
