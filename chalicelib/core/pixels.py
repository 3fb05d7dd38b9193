"""Decoding a validated photo (JPEG or PNG, chalicelib.core.images) into
the pixels the engines work on, within the bounds of core/decoding.py."""

from PIL import Image, ImageOps, UnidentifiedImageError

from chalicelib.core.decoding import DeadlineReader, check_budget, check_jpeg_scans, decode_slot, decode_within
from chalicelib.core.errors import InvalidImage


def decode_rgb(data: bytes, max_pixels: int) -> Image.Image:
    """The photo upright (EXIF orientation applied), in 8-bit RGB, with at
    most about max_pixels: large JPEGs decode straight at 1/2, 1/4 or 1/8
    scale (draft mode); anything still larger is scaled down before it is
    made RGB (one full-size image held at a time, not one per step)."""
    try:
        image = Image.open(DeadlineReader(data))
        check_budget(image)
        if image.format == "JPEG":
            check_jpeg_scans(data)
        scale = min(1.0, (max_pixels / (image.width * image.height)) ** 0.5)
        if image.format == "JPEG" and scale < 1:
            image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        with decode_slot(), decode_within(image):
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            if image.width * image.height > max_pixels * 1.05:
                scale = (max_pixels / (image.width * image.height)) ** 0.5
                size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
                image = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
            return to_rgb(image)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidImage(
            f"The image could not be read ({e.__class__.__name__}): send a complete JPEG or PNG file."
        ) from e


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
        if image.mode != "RGBA":
            image = image.convert("RGBA")
        over_white = Image.new("RGB", image.size, (255, 255, 255))
        over_white.paste(image, mask=image.getchannel("A"))
        return over_white
    return image.convert("RGB")
