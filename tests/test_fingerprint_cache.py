"""The base-model fingerprint cache cannot be fooled by restoring a file's mtime (issue 11, case 7)."""

from __future__ import annotations

import hashlib
import os


def test_weights_edited_in_place_with_the_old_mtime_are_re_hashed(tmp_path, monkeypatch):
    from headshot.models.loading import fingerprint_path

    monkeypatch.setenv("HEADSHOT_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    (model / "unet").mkdir(parents=True)
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"original weights")
    first = fingerprint_path(model)
    assert fingerprint_path(model) == first  # cached

    stat = weights.stat()
    with open(weights, "r+b") as handle:  # same size, edited in place
        handle.write(b"tampered")
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the old mtime restored
    assert weights.stat().st_mtime_ns == stat.st_mtime_ns and weights.stat().st_size == stat.st_size
    second = fingerprint_path(model)
    assert second != first
    relative = "unet/diffusion_pytorch_model.safetensors"
    expected = hashlib.sha256(relative.encode() + hashlib.sha256(weights.read_bytes()).hexdigest().encode())
    assert second == expected.hexdigest()
