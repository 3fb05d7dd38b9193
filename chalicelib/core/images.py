"""Checking and decoding uploaded photos. `inspect_image` runs in every
stage before anything is stored; `decode_rgb` feeds the embedded engine."""

import base64
import binascii
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from chalicelib.core.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType
from chalicelib.core.limits import ACCEPTED_FORMATS, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
_DATA_URL_MARK = b";base64,"


@dataclass(frozen=True)
class ImageInfo:
    format: str
    content_type: str
    width: int
    height: int


def body_bytes(body: bytes | None) -> bytes:
    """The image bytes of a request body: raw JPEG/PNG, or its base64 text
    (as the old clients send it, optionally as a data: URL)."""
    if not body:
        raise InvalidImage("The request body is empty: send the image bytes or their base64 text.")
    if _sniff(body) or len(body) > MAX_IMAGE_BYTES * 4 // 3 + 1024:
        return body
    text = body.strip()
    if text.startswith(b"data:") and _DATA_URL_MARK in text[:100]:
        text = text.split(_DATA_URL_MARK, 1)[1]
    try:
        return base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return body  # not base64: inspect_image says what is wrong with it


def inspect_image(data: bytes) -> ImageInfo:
    """Validate a photo without decoding more than needed: size, format and
    dimensions come from the header, so decompression bombs stop there."""
    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"The image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (15 MB).")
    if not _sniff(data):
        raise UnsupportedMediaType("Only JPEG and PNG images are accepted.")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit, below, is lower than Pillow's: no warning needed.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise PayloadTooLarge(
            f"The image has too many pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        ) from e
    except (UnidentifiedImageError, OSError) as e:
        raise _unreadable(e) from e
    if image.format not in ACCEPTED_FORMATS:
        raise UnsupportedMediaType("Only JPEG and PNG images are accepted.")
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise PayloadTooLarge(
            f"The image is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        )
    _check_decodes(image)
    return ImageInfo(image.format, ACCEPTED_FORMATS[image.format], width, height)


def decode_rgb(data: bytes, max_pixels: int) -> Image.Image:
    """The photo upright (EXIF orientation applied), in 8-bit RGB, with at
    most about max_pixels: large JPEGs decode straight at 1/2, 1/4 or 1/8
    scale (draft mode); anything still larger is scaled down."""
    try:
        image = Image.open(io.BytesIO(data))
        scale = min(1.0, (max_pixels / (image.width * image.height)) ** 0.5)
        if image.format == "JPEG" and scale < 1:
            image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        image = ImageOps.exif_transpose(image)
        image = _to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise _unreadable(e) from e
    if image.width * image.height > max_pixels * 1.05:
        scale = (max_pixels / (image.width * image.height)) ** 0.5
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def _sniff(data: bytes) -> str | None:
    return next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)


def _check_decodes(image: Image.Image) -> None:
    """Decode cheaply (JPEG at 1/8 scale) to reject truncated or corrupt files."""
    try:
        if image.format == "JPEG":
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise _unreadable(e) from e


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grayscale: keep the top 8 bits instead of clipping at 255.
        high = image.point(lambda v: v / 256) if image.mode == "I" else image.convert("I").point(lambda v: v / 256)
        return high.convert("L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image.convert("RGB")


def _unreadable(error: Exception) -> InvalidImage:
    return InvalidImage(f"The image could not be read ({error.__class__.__name__}): send a complete JPEG or PNG file.")
