"""The preview inside a headshot's C2PA manifest: viewer-sized by default, optional, never enlarged.

c2pa's own default embedded a 1024 px JPEG in every manifest: 140 KB of a 230 KB 512 px
headshot, and a 64 px headshot grew to 89 KB. Sizes are measured on the signed files.
"""

from __future__ import annotations

import io

import c2pa
import pytest
from PIL import Image
from signing_support import dev_keys, portrait, signing_config  # noqa: F401  (fixtures)

from headshot.signing.api import sign_image
from headshot.signing.config import WatermarkSettings


def _preview(path) -> Image.Image | None:
    """The manifest's thumbnail as c2pa reads it back, or None when the manifest has none."""
    with c2pa.Reader("image/jpeg", io.BytesIO(path.read_bytes())) as reader:
        thumbnail = reader.get_active_manifest().get("thumbnail")
        if thumbnail is None:
            return None
        data = io.BytesIO()
        reader.resource_to_stream(thumbnail["identifier"], data)
    return Image.open(io.BytesIO(data.getvalue()))


@pytest.fixture
def config(signing_config):  # noqa: F811
    # No watermark: the preview is the subject here, and the manifest store stays out of it.
    return signing_config.model_copy(update={"watermark": WatermarkSettings(enabled=False)})


def test_default_preview_is_256_px_and_the_manifest_stays_small(tmp_path, portrait, config):  # noqa: F811
    assert config.manifest_thumbnail == 256
    signed = sign_image(portrait, tmp_path / "headshot.jpg", None, config)
    assert _preview(signed.path).size == (256, 256)
    image_alone = io.BytesIO()
    portrait.save(image_alone, "JPEG", quality=config.quality)
    manifest_bytes = signed.path.stat().st_size - len(image_alone.getvalue())
    assert manifest_bytes < 30_000, f"the manifest adds {manifest_bytes} bytes (c2pa's default: ~144 KB)"


def test_a_small_headshot_keeps_its_own_size_as_preview(tmp_path, portrait, config):  # noqa: F811
    signed = sign_image(portrait.resize((64, 64)), tmp_path / "tiny.jpg", None, config)
    assert _preview(signed.path).size == (64, 64)
    assert signed.path.stat().st_size < 15_000  # c2pa's default made it 89 KB


def test_zero_leaves_the_preview_out_and_the_file_still_verifies(tmp_path, portrait, config):  # noqa: F811
    from headshot.signing.api import verify_file

    signed = sign_image(
        portrait, tmp_path / "bare.jpg", None, config.model_copy(update={"manifest_thumbnail": 0})
    )
    assert _preview(signed.path) is None
    assert verify_file(signed.path, config).state == "Valid"
