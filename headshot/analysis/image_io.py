"""Read whatever a phone or a camera produced as an upright 8-bit RGB image.

Every way a photo can fail to read (empty, truncated, not an image, a decompression
bomb) becomes a `HeadshotError` that names the file and the reason. Oversized
images are refused from their header, before any pixel is decoded, so a 30000x30000
PNG costs nothing. EXIF orientation is applied; 16-bit, CMYK, greyscale, palette and
alpha images are converted to RGB; embedded colour profiles (Display P3 from phones,
CMYK press profiles) are converted to sRGB. HEIC/HEIF is read when `pillow-heif` is
installed (`pip install headshot[heic]`).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from headshot.errors import HeadshotError

try:  # optional: HEIC/HEIF, the iPhone's default format
    from pillow_heif import register_heif_opener

    register_heif_opener()
    HEIC_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the environment
    HEIC_SUPPORTED = False

PHOTO_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp"}
    | ({".heic", ".heif"} if HEIC_SUPPORTED else set())
)

# 100 megapixels: above any phone's default output, far below what would exhaust memory.
DEFAULT_MAX_PIXELS = 100_000_000

# Transparent areas become white, like a studio backdrop, rather than black.
_BACKDROP = (255, 255, 255)


def is_photo_name(path: Path) -> bool:
    """Whether a file's name says it is a photo headshot can read (hidden files are not)."""
    return not path.name.startswith(".") and path.suffix.lower() in PHOTO_SUFFIXES


def read_photo(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The photo at `path` as an upright RGB image with no metadata, or a HeadshotError saying why not."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise HeadshotError(f"{path.name}: cannot read the file ({exc.strerror})") from None
    if size == 0:
        raise HeadshotError(f"{path.name}: empty file")
    image = _open_header(path)
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise HeadshotError(
                f"{path.name}: refused, {width}x{height} = {width * height / 1e6:.0f} megapixels "
                f"is over the limit of {max_pixels / 1e6:.0f} (a decompression bomb?)"
            )
        try:
            image.seek(0)  # animated formats: the first frame
            image.load()
            return _upright_rgb(image)
        except Exception as exc:  # decoders raise OSError, SyntaxError, ValueError, EOFError...
            raise HeadshotError(f"{path.name}: truncated or corrupt image data ({exc})") from None


def _open_header(path: Path) -> Image.Image:
    """Open lazily (header only). Our own pixel limit replaces Pillow's, so the message
    can give the size; Pillow's global limit is lifted only for this call."""
    saved_limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise HeadshotError(f"{path.name}: not an image, or a format headshot cannot read") from None
    except OSError as exc:
        raise HeadshotError(f"{path.name}: cannot read the file ({exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved_limit


def _upright_rgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    upright = ImageOps.exif_transpose(image, in_place=True) or image  # in place: no 12 MP copy
    converted = None
    if profile and upright.mode in ("RGB", "CMYK"):
        converted = _profile_to_srgb(upright, profile)
    rgb = converted if converted is not None else _to_rgb(upright)
    # Pixels only: EXIF (GPS, device, names), profiles and comments stay behind.
    return Image.fromarray(np.asarray(rgb), mode="RGB")


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_wide_to_8bit(np.asarray(image)), mode="L").convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        backdrop = Image.new("RGB", rgba.size, _BACKDROP)
        backdrop.paste(rgba, mask=rgba.getchannel("A"))
        return backdrop
    # CMYK, L, 1, YCbCr, LAB, HSV: Pillow's own conversions are correct for these.
    return image.convert("RGB")


def _wide_to_8bit(pixels: np.ndarray) -> np.ndarray:
    """16-bit (or 32-bit / float) greyscale to 8 bits, scaling instead of clipping."""
    values = pixels.astype(np.float64)
    if pixels.dtype.kind == "f":
        top = 1.0 if values.max(initial=0.0) <= 1.0 else 255.0
    else:
        top = 65535.0 if values.max(initial=0) > 255 or pixels.dtype.itemsize == 2 else 255.0
    return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)


def _profile_to_srgb(image: Image.Image, profile: bytes) -> Image.Image | None:
    """Convert through an embedded colour profile; None when it is sRGB already or unusable."""
    from PIL import ImageCms

    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        if image.mode == "RGB" and "srgb" in ImageCms.getProfileDescription(source).lower():
            return None
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None
