"""What the API accepts as a photo. JPEG and PNG are kept byte for byte
(but for their GPS location, core/location.py); HEIC/HEIF, WebP and AVIF
are converted to JPEG (upright, with their EXIF and ICC profile), so the
archive and the engines only ever see JPEG and PNG.
Every check reads the header first: a decompression bomb is refused by its
dimensions, its decoded size or its scans, before a pixel is decoded
(core/decoding.py)."""

import io
import struct
import warnings
from dataclasses import dataclass
from functools import cache

from PIL import Image, ImageOps, UnidentifiedImageError

from chalicelib.core.decoding import DeadlineReader, check_budget, check_jpeg_scans, decode_slot, decode_within
from chalicelib.core.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType
from chalicelib.core.limits import ACCEPTED_TYPES, MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, STORED_TYPES
from chalicelib.core.location import strip_location
from chalicelib.core.pixels import to_rgb

# The one message for a photo, or a Content-Type, that the API does not take.
PHOTO_TYPES = "a JPEG, PNG, HEIC/HEIF, WebP or AVIF photo"
UNSUPPORTED_TYPE_MESSAGE = (
    f"Send {PHOTO_TYPES} ({', '.join(ACCEPTED_TYPES)} or application/octet-stream), or its base64 text as text/plain."
)

_ORIENTATION = 0x0112  # the EXIF tag
_JPEG_QUALITIES = (90, 80, 70)  # a converted photo takes the first that fits MAX_IMAGE_BYTES
# ISO BMFF brands (the `ftyp` box) of HEIF files, HEVC-coded (HEIC) or
# generic, and of AVIF files (which also name the generic HEIF brands).
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name for it
    content_type: str
    width: int
    height: int


@dataclass(frozen=True)
class Upload:
    """A photo ready to store: JPEG or PNG bytes, and what was sent."""

    data: bytes
    content_type: str
    original_content_type: str
    width: int
    height: int

    @property
    def converted(self) -> bool:
        return self.content_type != self.original_content_type


def sniff(data: bytes) -> tuple[str, str] | None:
    """(Pillow's format name, content type) from the first bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG", "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG", "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP", "image/webp"
    if data[4:8] == b"ftyp":
        size = struct.unpack(">I", data[:4])[0]
        brands = {data[8:12]} | {data[i : i + 4] for i in range(16, min(size, len(data), 256) - 3, 4)}
        if brands & _AVIF_BRANDS:
            return "AVIF", "image/avif"
        if brands & _HEIC_BRANDS:
            return "HEIF", "image/heic"
        if brands & _HEIF_BRANDS:
            return "HEIF", "image/heif"
    return None


def inspect_image(data: bytes) -> ImageInfo:
    """Validate a photo of any accepted type from its header: size, type and
    dimensions. JPEG and PNG are also decoded cheaply, to refuse truncated
    files (a converted type is decoded in full when it is converted)."""
    image, info = _open(data)
    if info.content_type in STORED_TYPES:
        _check_decodes(image)
    return info


def prepare_upload(data: bytes, keep_location: bool = False) -> Upload:
    """The photo to store: JPEG and PNG as sent; the other accepted types
    converted to JPEG, upright, keeping their EXIF (Orientation set to 1)
    and ICC profile. Without `keep_location` (FACEPRINT_KEEP_LOCATION), its
    GPS position is taken out of both (core/location.py)."""
    info = inspect_image(data)
    if info.content_type in STORED_TYPES:
        stored, width, height = data, info.width, info.height
    else:
        image, _ = _open(data)  # the header again (cheap), this time to decode it
        stored, width, height = _convert_to_jpeg(image)
    content_type = info.content_type if info.content_type in STORED_TYPES else "image/jpeg"
    if not keep_location:
        stored = strip_location(stored, content_type)
    return Upload(stored, content_type, info.content_type, width, height)


def prepare_search(data: bytes) -> bytes:
    """The photo as the engines take it (JPEG or PNG), converted like an
    upload (nothing is stored: its location may stay)."""
    return prepare_upload(data, keep_location=True).data


def _open(data: bytes) -> tuple[Image.Image, ImageInfo]:
    if len(data) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(f"The image is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} bytes (15 MB).")
    kind = sniff(data)
    if kind is None:
        raise UnsupportedMediaType(UNSUPPORTED_TYPE_MESSAGE)
    fmt, content_type = kind
    if fmt == "HEIF":
        _register_heif_opener()
    if fmt == "JPEG":
        check_jpeg_scans(data)
    try:
        with warnings.catch_warnings():
            # Our own pixel limit, below, is lower than Pillow's: no warning needed.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(DeadlineReader(data), formats=[fmt])
    except Image.DecompressionBombError as e:
        raise PayloadTooLarge(
            f"The image has too many pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        ) from e
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, RuntimeError) as e:
        raise _unreadable(e) from e
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise PayloadTooLarge(
            f"The image is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS // 1_000_000} megapixels."
        )
    check_budget(image)
    return image, ImageInfo(fmt, content_type, width, height)


@cache
def _register_heif_opener() -> None:
    """Pillow reads WebP and AVIF itself; HEIC/HEIF needs pillow-heif, whose
    import (libheif) is paid only when the first HEIC arrives."""
    import pillow_heif

    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def _check_decodes(image: Image.Image) -> None:
    """Decode cheaply (JPEG at 1/8 scale) to reject truncated or corrupt
    files, within the time limit."""
    try:
        if image.format == "JPEG":
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        with decode_slot(), decode_within(image):
            image.load()
    except (OSError, ValueError, SyntaxError) as e:
        raise _unreadable(e) from e


def _convert_to_jpeg(image: Image.Image) -> tuple[bytes, int, int]:
    """The first frame, upright, as an 8-bit JPEG with the photo's EXIF
    (Orientation 1: the pixels are turned already), ICC profile and XMP.
    One full-size image is held at a time (turned in place); the decoders
    of these types decode in one call, bounded by the photo's budget."""
    with decode_slot():
        try:
            exif = image.getexif()
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # HEIF's own rotation is applied on decoding
        except (OSError, ValueError, SyntaxError, RuntimeError) as e:
            raise _unreadable(e) from e
        options = {}
        if len(exif):
            exif[_ORIENTATION] = 1
            options["exif"] = exif
        if image.info.get("icc_profile"):
            options["icc_profile"] = image.info["icc_profile"]
        if image.info.get("xmp"):
            options["xmp"] = image.info["xmp"]  # exif_transpose took the orientation out of it
        pixels = image if image.mode in ("RGB", "L") else to_rgb(image)
        for quality in _JPEG_QUALITIES:
            out = io.BytesIO()
            pixels.save(out, "JPEG", quality=quality, **options)
            if out.tell() <= MAX_IMAGE_BYTES:
                return out.getvalue(), pixels.width, pixels.height
    raise PayloadTooLarge(
        f"The photo, converted to JPEG, is over {MAX_IMAGE_BYTES} bytes (15 MB) even at quality "
        f"{_JPEG_QUALITIES[-1]}: send a smaller photo, or a JPEG."
    )


def _unreadable(error: Exception) -> InvalidImage:
    return InvalidImage(
        f"The image could not be read ({error.__class__.__name__}): "
        "send a complete JPEG, PNG, HEIC/HEIF, WebP or AVIF file."
    )
