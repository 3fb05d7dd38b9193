"""Photos made on the fly from the shared ones: other encodings, EXIF
orientations, and hostile files."""

import io
import random
import struct
import zlib
from functools import cache

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


# The types the API converts: photo format (Pillow's name) for each content type.
CONVERTED = {"image/heic": "HEIF", "image/webp": "WEBP", "image/avif": "AVIF"}
TEST_MAKE = "Faceprint test camera"  # an EXIF tag the converted photos carry, to find it again


@cache
def phone_photo(name: str, content_type: str, orientation: int = 6) -> bytes:
    """A shared photo as a phone would send it in another type: pixels
    stored turned with the EXIF tag that turns them back (HEIC keeps that as
    its own rotation), and the photo's ICC profile and EXIF, plus a Make tag."""
    original = Image.open(io.BytesIO(photo(name)))
    turn = {6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270, 3: Image.Transpose.ROTATE_180}
    exif = original.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = TEST_MAKE
    pixels = original.convert("RGB").transpose(turn[orientation])
    return encode(
        pixels,
        _writable(CONVERTED[content_type]),
        exif=exif.tobytes(),  # pillow-heif reads the orientation from bytes only
        icc_profile=original.info["icc_profile"],
        quality=85,
    )


def header_only(content_type: str, width: int, height: int) -> bytes:
    """A tiny file of a converted type whose header claims width x height:
    a decompression bomb as far as any header reader can tell."""
    if content_type == "image/webp":
        # A lossless bitstream header (14 bits per side) and nothing else.
        vp8l = b"\x2f" + struct.pack("<I", (width - 1) | ((height - 1) << 14)) + b"\0" * 15  # even: no padding
        body = b"WEBP" + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
        return b"RIFF" + struct.pack("<I", len(body)) + body
    # HEIC and AVIF: a real 64x64 file whose `ispe` box (image size) is rewritten.
    data = encode(Image.new("RGB", (64, 64), "gray"), _writable(CONVERTED[content_type]))
    at = data.index(b"ispe") + 8  # past the box type and its version and flags
    return data[:at] + struct.pack(">II", width, height) + data[at + 8 :]


def _writable(fmt: str) -> str:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    return fmt


def noise_png(side: int, seed: int = 7) -> bytes:
    """A square of random pixels: a valid photo that no encoder can shrink."""
    rng = random.Random(seed)
    pixels = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    return encode(pixels, "PNG", compress_level=1)


# A photo's location, as a phone's EXIF holds it: the GPS IFD's date is
# stored out of line, easy to find in a file's bytes.
DATESTAMP = "1999:12:31"
GPS = {0: b"\x02\x03\x00\x00", 1: "N", 2: (48.0, 51.0, 29.6), 3: "E", 4: (2.0, 17.0, 40.2), 29: DATESTAMP}


def exif_with_location(orientation: int = 6, endian: str = "<") -> Image.Exif:
    """EXIF with an orientation, a Make and a GPS position."""
    exif = Image.Exif()
    exif.endian = endian
    exif[0x0112] = orientation
    exif[0x010F] = "Faceprint test camera"
    exif[0x8825] = GPS
    return exif
