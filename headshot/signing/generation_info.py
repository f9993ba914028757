"""What `generate` tells `sign` about how an image was made (the manifest's generation record)."""

from __future__ import annotations

from pydantic import Field

from headshot.config import StrictModel


class GenerationInfo(StrictModel):
    """Provenance of one generated image. Hashes only: no local paths, no user names."""

    base_model: str  # hub id or preset name; a local path is reduced to its folder name
    base_model_sha256: str
    lora_sha256: str | None = None
    template: str
    seed: int
    family: str | None = None
    # Prompts are private to the subject; they enter a manifest only if the user opts in.
    prompt: str | None = None
    negative_prompt: str | None = None
    # SHA-256 of the subject's accepted training photos (ingredients as hashes only).
    subject_photo_sha256: list[str] = Field(default_factory=list)
