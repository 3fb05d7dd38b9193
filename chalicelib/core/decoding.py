"""Bounds on decoding a photo, so that no file, however small, costs the
server more than a real photo would (issue 22, rows 4 and 5):

- a memory budget, read from the header: width x height x channels x bytes
  per channel (alpha and 16-bit samples included) at most MAX_DECODED_BYTES,
  a 50-megapixel RGB photo. A 34-byte WebP of 49 MP transparent pixels, or
  a 381 KB 16-bit RGBA PNG, is refused before a pixel is decoded;
- at most MAX_JPEG_SCANS scans in a (progressive) JPEG, counted in its
  bytes: each scan is one more pass over every block of the image, and a
  file of thousands of tiny scans holds a decoder for minutes;
- a time limit on the decodes a request thread runs itself (JPEG and PNG
  are decoded in pieces, checked against it between them; the one-call
  decoders of WebP, AVIF and HEIC are bounded by the budget);
- a few decodes at once in this process (decode_slot), as many as its cores
  and memory allow; the next waits its turn, for a while, then gets a 503.
"""

import contextlib
import io
import os
import struct
import threading
import time
from collections.abc import Iterator
from functools import cache

from PIL import Image

from chalicelib.core.errors import ImageTooComplex, PayloadTooLarge, ServiceUnavailable
from chalicelib.core.limits import MAX_DECODED_BYTES, MAX_JPEG_SCANS, TIME_LIMIT_SECONDS

# What one decode may cost at its peak, several times its decoded bytes (the
# decoder's own buffers, Pillow's image, a turned or converted copy): the
# slots are sized so that all of them together stay within a quarter of
# the machine's memory.
PEAK_BYTES_PER_DECODE = 4 * MAX_DECODED_BYTES
SLOT_WAIT_SECONDS = TIME_LIMIT_SECONDS


def decoded_bytes(image: Image.Image) -> int:
    """What the image's pixels take once decoded, from its header: width x
    height x channels x bytes per channel (16-bit samples count 2, 32-bit 4)."""
    per_channel = 4 if image.mode in ("I", "F") else 2 if "16" in f"{image.mode} {_rawmode(image)}" else 1
    return image.width * image.height * len(image.getbands()) * per_channel


def _rawmode(image: Image.Image) -> str:
    """How the file stores its pixels, when Pillow keeps it (a 16-bit RGBA
    PNG is `RGBA;16B`, held as 8-bit RGBA once decoded)."""
    tile = getattr(image, "tile", None)
    args = tile[0].args if tile else None
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return args[0]
    return args if isinstance(args, str) else ""


def check_budget(image: Image.Image) -> None:
    """PayloadTooLarge when the image would take over MAX_DECODED_BYTES to decode."""
    needed = decoded_bytes(image)
    if needed > MAX_DECODED_BYTES:
        bands = len(image.getbands())
        raise PayloadTooLarge(
            f"The image would take {needed / 1e6:.0f} MB to decode ({image.width}x{image.height} pixels, "
            f"{bands} channel{'s' if bands > 1 else ''} of {needed * 8 // (image.width * image.height * bands)} bits); "
            f"the limit is {MAX_DECODED_BYTES / 1e6:.0f} MB, a {MAX_DECODED_BYTES // 3_000_000}-megapixel RGB photo."
        )


def check_jpeg_scans(data: bytes) -> None:
    """ImageTooComplex when a JPEG has over MAX_JPEG_SCANS scans. The
    segments before the first scan are walked (an EXIF thumbnail is a JPEG
    of its own, with scans of its own); after it, a scan's marker FF DA
    cannot occur inside entropy-coded data (an FF there is followed by 00)."""
    first = _first_scan(data)
    if first is None:
        return
    scans = data.count(b"\xff\xda", first)
    if scans > MAX_JPEG_SCANS:
        raise ImageTooComplex(
            f"The JPEG has {scans} scans; at most {MAX_JPEG_SCANS} are accepted (a progressive JPEG has about 10): "
            "save it again as a standard JPEG."
        )


def _first_scan(data: bytes) -> int | None:
    at = 2  # after SOI
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None  # not a marker where one must be: the decoder says what is wrong
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker == 0xDA:
            return at
        if marker in (0x01, *range(0xD0, 0xD9)):  # no length
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        at += 2 + length
    return None


class DeadlineReader(io.BytesIO):
    """The file a photo is opened from: once `deadline` is set, a read past
    it stops the decoder (ImageTooComplex, through `decode_within`)."""

    deadline: float | None = None

    def read(self, size: int | None = -1) -> bytes:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise _PastDeadline
        return super().read(size)


class _PastDeadline(Exception):
    pass


# How much a decoder reads at a time, so the deadline is checked often.
_READ_BLOCK = 16 * 1024


@contextlib.contextmanager
def decode_within(image: Image.Image, seconds: float = TIME_LIMIT_SECONDS) -> Iterator[None]:
    """Decode `image` (opened from a DeadlineReader) within `seconds`."""
    reader = image.fp
    if isinstance(reader, DeadlineReader):
        reader.deadline = time.monotonic() + seconds
        image.decodermaxblock = _READ_BLOCK
    try:
        yield
    except _PastDeadline:
        raise ImageTooComplex(
            f"Decoding this photo took over {seconds:g} s, the limit: send a smaller or simpler photo."
        ) from None
    finally:
        if isinstance(reader, DeadlineReader):
            reader.deadline = None


@cache
def _slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(decode_slots())


def decode_slots() -> int:
    """How many photos this process decodes at once: one per core, fewer
    when a quarter of the machine's memory cannot hold that many."""
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        memory = 4 * 2**30
    return max(1, min(os.cpu_count() or 1, memory // 4 // PEAK_BYTES_PER_DECODE))


@contextlib.contextmanager
def decode_slot() -> Iterator[None]:
    """One of the process's decode slots, for as long as a decode runs; a
    503 when none frees within SLOT_WAIT_SECONDS."""
    slots = _slots()
    if not slots.acquire(timeout=SLOT_WAIT_SECONDS):
        raise ServiceUnavailable(
            f"The server is decoding {decode_slots()} photos at once, its limit, and none finished within "
            f"{SLOT_WAIT_SECONDS:g} s: retry in a moment."
        )
    try:
        yield
    finally:
        slots.release()
