"""Decoding a validated photo (JPEG or PNG, chalicelib.core.images) into
the pixels the engines work on."""

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from chalicelib.core.errors import InvalidImage


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
        image = to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidImage(
            f"The image could not be read ({e.__class__.__name__}): send a complete JPEG or PNG file."
        ) from e
    if image.width * image.height > max_pixels * 1.05:
        scale = (max_pixels / (image.width * image.height)) ** 0.5
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB: 16-bit grayscale keeps its top 8 bits, and transparency is
    laid over white."""
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
