"""Square headshot crops around a detected face, and the face mask that goes with each.

The crop is framed like a headshot: the face takes a fixed share of the width and
sits below the centre, leaving room above for hair. A crop that would run off the
photo is moved back inside, and shrunk only when the photo is too narrow for it:
padding would put borders into the training images, which the model would learn.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

Box = tuple[int, int, int, int]  # left, top, right, bottom


def headshot_crop_box(
    face_box: Box, image_size: tuple[int, int], *, face_fraction: float, face_center_y: float
) -> Box:
    """The square crop (in image pixels) framing `face_box` as a headshot.

    `face_fraction`: the face box's width as a share of the crop's side.
    `face_center_y`: where the face box's centre sits, from the crop's top (0..1).
    """
    width, height = image_size
    left, top, right, bottom = face_box
    side = min((right - left) / face_fraction, width, height)
    side = max(1, int(round(side)))
    center_x = (left + right) / 2
    center_y = (top + bottom) / 2
    crop_left = _fit(int(round(center_x - side / 2)), side, width)
    crop_top = _fit(int(round(center_y - face_center_y * side)), side, height)
    return (crop_left, crop_top, crop_left + side, crop_top + side)


def _fit(start: int, side: int, limit: int) -> int:
    return min(max(start, 0), limit - side)


def render_crop(image: Image.Image, crop_box: Box, resolution: int) -> Image.Image:
    """The crop resized to the training resolution, as a fresh image with no metadata."""
    region = image.crop(crop_box)
    resized = region.resize((resolution, resolution), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return Image.fromarray(np.asarray(resized.convert("RGB")))


def face_mask(face_box: Box, crop_box: Box, resolution: int) -> Image.Image:
    """White ellipse over the face (forehead to chin, cheek to cheek) in crop coordinates.

    dlib's box runs from the brows to the chin; the ellipse is stretched upwards to
    take in the forehead, which the masked loss should also weigh.
    """
    scale = resolution / (crop_box[2] - crop_box[0])
    left, top, right, bottom = face_box
    face_w, face_h = right - left, bottom - top
    cx = ((left + right) / 2 - crop_box[0]) * scale
    cy = ((top + bottom) / 2 - 0.12 * face_h - crop_box[1]) * scale
    rx, ry = 0.58 * face_w * scale, 0.72 * face_h * scale
    mask = Image.new("L", (resolution, resolution), 0)
    ImageDraw.Draw(mask).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
    return mask
