"""The face-detail pass: re-render the face of a candidate at the model's own resolution.

A headshot's face fills a small part of the frame, so the denoiser spends few latent pixels
on eyes, skin and earrings: that is where plastic skin and empty eyes come from. As
AUTOMATIC1111's ADetailer and ComfyUI's FaceDetailer do, this pass finds the face (dlib),
crops a square around it with a margin, re-renders the crop at the model's native
resolution by img2img with the same LoRA, prompt and seed at a set strength, and blends it
back through a feathered elliptical mask. Pixels outside the mask are the original's, bit
for bit. The img2img pipeline is built from the loaded pipeline's own components
(`AutoPipelineForImage2Image.from_pipe`: no second copy of the weights, the LoRA included),
so every family with an img2img pipeline in diffusers gets it through the same code; a family
without one brings its own (`Family.image_to_image`: FLUX.2 [klein] noises the crop's latents
and denoises with its text-to-image pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from pydantic import Field

from headshot.config import StrictModel

# The img2img noise is drawn from its own stream: seed + this, so the pass is deterministic
# per candidate seed and independent of the text-to-image draw.
SEED_OFFSET = 7919


class RefineOptions(StrictModel):
    """The face-detail pass (`refine:` in the generate config)."""

    enabled: bool = False
    # How much of the crop is re-noised: 0 keeps it, 1 renders it anew (0.3-0.45 is typical).
    strength: float = Field(0.35, gt=0, le=1)
    # The crop is the face box grown by this fraction of its size on every side.
    margin: float = Field(0.5, ge=0, le=3)
    # Width of the soft edge of the blend mask, as a fraction of the crop's side.
    feather: float = Field(0.12, gt=0, le=0.4)
    # Faces smaller than this (box side in px) are left alone: too little to work from.
    min_face: int = Field(24, ge=8, le=4096)
    steps: int | None = Field(None, ge=1, le=1000)  # default: the template's steps


@dataclass
class FaceCrop:
    box: tuple[int, int, int, int]  # left, top, right, bottom in the image

    @property
    def side(self) -> int:
        return self.box[2] - self.box[0]


def face_crop(image: Image.Image, options: RefineOptions) -> FaceCrop | None:
    """A square around the largest face, grown by the margin, moved (or shrunk) to fit."""
    from headshot.analysis.faces import detect_faces

    faces = detect_faces(image, embeddings=False, upsample=1)
    if not faces:
        return None
    left, top, right, bottom = faces[0].box
    size = max(right - left, bottom - top)
    if size < options.min_face:
        return None
    side = min(int(round(size * (1 + 2 * options.margin))), image.width, image.height)
    cx, cy = (left + right) / 2, (top + bottom) / 2
    x0 = int(round(min(max(cx - side / 2, 0), image.width - side)))
    y0 = int(round(min(max(cy - side / 2, 0), image.height - side)))
    return FaceCrop((x0, y0, x0 + side, y0 + side))


def feathered_mask(side: int, feather: float) -> Image.Image:
    """An ellipse filling the crop with a soft edge, exactly 0 at the crop's border."""
    ramp = max(1, int(round(side * feather)))
    mask = Image.new("L", (side, side), 0)
    inset = ramp  # the blur reaches about one radius out: keep it inside the crop
    ImageDraw.Draw(mask).ellipse([inset, inset, side - 1 - inset, side - 1 - inset], fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(ramp / 2))
    values = np.asarray(mask).copy()
    values[[0, -1], :] = 0
    values[:, [0, -1]] = 0
    return Image.fromarray(values)


def blend(
    image: Image.Image, patch: Image.Image, crop: FaceCrop, feather: float
) -> tuple[Image.Image, Image.Image]:
    """`image` with `patch` blended into the crop; returns it and the full-frame mask."""
    mask = Image.new("L", image.size, 0)
    mask.paste(feathered_mask(crop.side, feather), crop.box[:2])
    pasted = image.copy()
    pasted.paste(patch.resize((crop.side, crop.side), Image.LANCZOS), crop.box[:2])
    return Image.composite(pasted, image, mask), mask


class FaceRefiner:
    """Runs the pass with an img2img pipeline sharing the text-to-image pipeline's modules."""

    def __init__(self, pipeline, resolution: int, options: RefineOptions):
        from headshot.errors import HeadshotError
        from headshot.families import family_of_pipeline

        family = family_of_pipeline(pipeline)
        self.render_crop = family.image_to_image(pipeline)
        if self.render_crop is None:
            raise HeadshotError(
                f"generate: option 'refine.enabled': the face-detail pass re-renders by img2img, and "
                f"{family.name} has no way to; set refine.enabled: false"
            )
        self.img2img = self.render_crop.pipeline  # the pipeline that renders the crop
        self.resolution = resolution
        self.options = options

    def settings(self) -> dict:
        """What decides the pass's pixels (for the candidate's sidecar and its reuse check)."""
        return {**self.options.model_dump(), "resolution": self.resolution}

    def refine(self, image: Image.Image, call: dict, seed: int) -> tuple[Image.Image, dict]:
        """Refine one candidate. `call` holds the text-to-image call's prompt arguments
        (prompt, negative prompt, guidance, steps...) for this one image."""
        import torch

        crop = face_crop(image, self.options)
        if crop is None:
            return image, {"applied": False, "reason": "no face of at least min_face px found"}
        source = image.crop(crop.box).resize((self.resolution, self.resolution), Image.LANCZOS)
        kwargs = {key: value for key, value in call.items() if key not in ("height", "width", "generator")}
        if self.options.steps is not None:
            kwargs["num_inference_steps"] = self.options.steps
        with torch.inference_mode():
            generator = torch.Generator("cpu").manual_seed(seed + SEED_OFFSET)
            patch = self.render_crop(source, self.options.strength, generator, **kwargs)
        refined, _ = blend(image, patch, crop, self.options.feather)
        return refined, {"applied": True, "crop_box": list(crop.box)}
