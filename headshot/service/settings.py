"""What one server instance is bound to: the repository, the watermark key, and its limits."""

from __future__ import annotations

from pydantic import Field

from headshot.config import StrictModel
from headshot.signing.config import SigningConfig


class ServiceSettings(StrictModel):
    """Limits are checked before any work: body size from the header and while reading,
    pixel count from the image header before decoding."""

    signing: SigningConfig = Field(default_factory=SigningConfig)  # store, watermark key, trust anchors
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, gt=0)  # an uploaded image, whole
    max_pixels: int = Field(default=40_000_000, gt=0)  # width x height from the image header
    max_results: int = Field(default=100, gt=0)  # cap of the API's maxResults
    detect_workers: int = Field(default=2, gt=0)  # watermark readings at once (CPU bound)
    detect_timeout_s: float = Field(default=30.0, gt=0)  # waiting for a worker plus the reading
