"""Decompression bombs under the 50 MP limit, made on the fly (issue 22,
rows 4 and 5): files of a few bytes or kilobytes that cost the server
gigabytes or minutes to decode. Each is a valid file, so only a budget
read from its header, or a count of its parts, can refuse it early."""

import io
import struct
import zlib
from functools import cache

from PIL import Image


@cache
def webp_bomb(side: int = 7000) -> bytes:
    """A lossless WebP of `side` x `side` transparent pixels (~49 MP): a few
    dozen bytes that decode to RGBA."""
    out = io.BytesIO()
    Image.new("RGBA", (side, side), (0, 0, 0, 0)).save(out, "WEBP", lossless=True, quality=0, method=0)
    return out.getvalue()


@cache
def avif_bomb(side: int = 7000) -> bytes:
    """An AVIF of `side` x `side` flat pixels, with alpha: under a kilobyte."""
    out = io.BytesIO()
    Image.new("RGBA", (side, side), (40, 80, 120, 255)).save(out, "AVIF", quality=0, speed=10)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@cache
def png16_bomb(width: int = 7000, height: int = 7000, bits: int = 16) -> bytes:
    """An RGBA PNG of zeros, 16-bit (8 bytes a pixel before decoding) unless
    `bits` says otherwise: a few hundred kilobytes of IDAT."""
    row = b"\0" * (1 + 4 * bits // 8 * width)
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bits, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">HH", marker, len(payload) + 2) + payload


@cache
def many_scans_jpeg(scans: int = 3000, width: int = 4000, height: int = 4000) -> bytes:
    """A progressive grayscale JPEG of `scans` AC scans, each a few end-of-band
    runs that cover every block: ~25 bytes a scan, each one a pass over
    every block of the image for the decoder."""
    blocks = -(-width // 8) * -(-height // 8)
    quant = _segment(0xFFDB, b"\x00" + b"\x01" * 64)
    frame = _segment(0xFFC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    # DC table 0 codes category 0 as "0"; AC table 0 codes EOB14 (a run of
    # 2**14 + 14 extra bits, at most 32767 blocks) as "0".
    dc = _segment(0xFFC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")
    ac = _segment(0xFFC4, b"\x10" + bytes([1] + [0] * 15) + b"\xe0")
    bits = ("0" + "1" * 14) * -(-blocks // 32767)  # EOB14 with all 14 extra bits set: runs of 32767
    bits += "1" * (-len(bits) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big").replace(b"\xff", b"\xff\x00")
    scan = _segment(0xFFDA, b"\x01\x01\x00" + bytes([1, 63, 0])) + data
    return b"\xff\xd8" + quant + frame + dc + ac + scan * scans + b"\xff\xd9"
