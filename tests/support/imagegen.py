"""Photos made on the fly from the shared ones: other encodings, EXIF
orientations, and hostile files."""

import io
import struct
import zlib

from PIL import Image, ImageEnhance, ImageFilter

from tests.support.photos import photo


def shared(name: str) -> Image.Image:
    return Image.open(io.BytesIO(photo(name))).convert("RGB")


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def with_exif_orientation(name: str, orientation: int) -> bytes:
    """A JPEG whose pixels are stored turned, with the EXIF tag that turns them back."""
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    image = shared(name).transpose(turn[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", exif=exif, quality=90)


def png_16bit_gray(name: str) -> bytes:
    gray = shared(name).convert("L")
    wide = Image.frombytes("I;16", gray.size, bytes(b for v in gray.tobytes() for b in (0, v)))
    # "I;16" is little-endian: the high byte (the original value) comes second.
    return encode(wide)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG claiming huge dimensions: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def jpeg(image: Image.Image) -> bytes:
    return encode(image, "JPEG", quality=90)


def darkened(name: str, factor: float) -> bytes:
    """The shared photo with its light scaled by `factor` (0.08: near black)."""
    return jpeg(ImageEnhance.Brightness(shared(name)).enhance(factor))


def blurred(name: str, radius: float) -> bytes:
    """The shared photo under a Gaussian blur of `radius` pixels."""
    return jpeg(shared(name).filter(ImageFilter.GaussianBlur(radius)))


def shrunk(name: str, scale: float) -> bytes:
    """The shared photo scaled down by `scale` (both sides)."""
    image = shared(name)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return jpeg(image.resize(size, Image.Resampling.LANCZOS))
