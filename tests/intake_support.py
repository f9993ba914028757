"""Photos for the intake tests: the packaged public-domain portraits, transformed.

Every helper writes a real image file the way a phone, a camera or an editor would,
so the tests exercise the same reading and gate code as real uploads.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from headshot.samples import astronaut, grace_hopper

ORIENTATION = 0x0112
GPS_IFD = 0x8825
SECRET_EXIF_WORDS = (b"SecretPhoneCo", b"Jane Secretary", b"PhoneModel-X1")


def hopper_cropped(height: int) -> Image.Image:
    """Grace Hopper with the bottom cut to `height` px: a different framing of the portrait."""
    image = grace_hopper()
    return image.crop((0, 0, image.width, height))


def exposure(image: Image.Image, factor: float) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(factor)


def blurred(image: Image.Image, radius: float = 6) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    canvas = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), (90, 90, 90))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    return canvas


def two_people() -> Image.Image:
    """Two portraits pasted side by side, as in a photo of two people."""
    return side_by_side(grace_hopper(), ImageOps.mirror(grace_hopper()))


def other_person() -> Image.Image:
    """Eileen Collins (the astronaut) cut to her head and shoulders: one face.

    The scan is much softer than the Hopper portrait (the gate would call it blurred
    first), so it is sharpened to the Hopper photos' focus level.
    """
    head = astronaut().crop((0, 0, 512, 300))
    return head.filter(ImageFilter.UnsharpMask(radius=2, percent=300, threshold=0))


def no_face() -> Image.Image:
    """The lower part of the Hopper portrait: uniform and medals, no face."""
    image = grace_hopper()
    return image.crop((0, 380, image.width, image.height))


def turned_head(image: Image.Image, degrees: float) -> Image.Image:
    """Turn the head about a vertical axis: the face as a cylinder with the nose standing out.

    Points move sideways by their depth times sin(angle), so the nose slides towards one
    eye and the far cheek narrows, as when a person turns away from the camera.
    """
    import cv2

    from headshot.analysis.faces import detect_faces

    pixels = np.asarray(image)
    height, width, _ = pixels.shape
    face = detect_faces(image, embeddings=False)[0]
    marks = face.landmarks5
    eye_a, eye_b, nose = marks[0:2].mean(axis=0), marks[2:4].mean(axis=0), marks[4]
    eyes = (eye_a + eye_b) / 2
    eye_distance = float(np.linalg.norm(eye_a - eye_b))
    radius, angle = face.width * 0.6, np.radians(degrees)
    xs = np.arange(width, dtype=np.float64)
    map_x = np.zeros((height, width), np.float32)
    for y in range(height):
        dx = xs - eyes[0]
        depth = np.sqrt(np.clip(radius**2 - dx**2, 0, None))
        ridge = np.exp(-0.5 * ((y - (eyes[1] + nose[1]) / 2) / ((nose[1] - eyes[1]) * 0.6)) ** 2)
        depth += 0.45 * eye_distance * ridge * np.exp(-0.5 * (dx / (0.18 * eye_distance)) ** 2)
        moved = eyes[0] + dx * np.cos(angle) + (depth - radius) * np.sin(angle)
        fade = np.clip(1.5 - np.abs(dx) / radius, 0, 1) * np.exp(
            -0.5 * ((y - face.center[1]) / (face.height * 0.9)) ** 2
        )
        target = np.maximum.accumulate(xs + (moved - xs) * fade)
        map_x[y] = np.interp(xs, target, xs)
    map_y = np.repeat(np.arange(height, dtype=np.float32)[:, None], width, axis=1)
    warped = cv2.remap(pixels, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(warped)


def save_with_exif_rotation_and_gps(upright: Image.Image, path: Path) -> None:
    """A JPEG stored sideways with EXIF Orientation 6 (display rotated 90 degrees clockwise),
    carrying GPS coordinates, a device and a person's name, like a phone photo."""
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # counter-clockwise: the sensor's view
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[0x010F] = SECRET_EXIF_WORDS[0].decode()  # Make
    exif[0x0110] = SECRET_EXIF_WORDS[2].decode()  # Model
    exif[0x013B] = SECRET_EXIF_WORDS[1].decode()  # Artist
    exif[GPS_IFD] = {1: "N", 2: (52.0, 22.0, 11.5), 3: "E", 4: (4.0, 53.0, 27.25)}
    stored.save(path, format="JPEG", quality=92, exif=exif.tobytes())


def save_png16_rgb(image: Image.Image, path: Path) -> None:
    """A 48-bit RGB PNG (16 bits per channel), as raw converters write."""
    import cv2

    wide = np.asarray(image, dtype=np.uint16) * 257
    assert cv2.imwrite(str(path), np.ascontiguousarray(wide[:, :, ::-1]))


def save_png16_grey(image: Image.Image, path: Path) -> None:
    wide = (np.asarray(image.convert("L"), dtype=np.uint32) * 257).astype(np.uint16)
    Image.fromarray(wide).save(path, format="PNG")


def save_rgba(image: Image.Image, path: Path) -> None:
    """PNG with an alpha channel: the top-left corner fully transparent."""
    rgba = image.convert("RGBA")
    alpha = np.full((image.height, image.width), 255, np.uint8)
    alpha[:40, :40] = 0
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(path, format="PNG")


def write_truncated_jpeg(image: Image.Image, path: Path) -> None:
    full = path.with_suffix(".full")
    image.save(full, format="JPEG", quality=90)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])


def write_png_bomb(path: Path, side: int = 30000) -> None:
    """A valid 1-bit greyscale PNG of side x side pixels: about 100 KB on disk,
    900 megapixels (and far more memory) once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
