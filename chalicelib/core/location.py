"""Where a photo was taken, taken out of it before it is stored (issue 22,
row 14): a phone's photo carries its GPS position in EXIF (the GPS IFD) and
often in XMP (exif:GPSLatitude, ...), and whoever can read the photo back
could read where its people live. Unless the stage keeps it on purpose
(FACEPRINT_KEEP_LOCATION=1), uploads lose it; everything else stays, the
orientation first of all.

Nothing is decoded or re-encoded: in a JPEG the Exif segment is patched in
place (the GPS IFD's pointer removed from IFD0, its entries and values
zeroed, so every other offset stays valid) and the XMP segment rewritten
without its GPS properties; in a PNG the eXIf chunk, an ImageMagick "Raw
profile type exif" and the XMP chunk likewise, with their CRCs. A photo
without a location comes back as the very bytes it was."""

import re
import struct
import zlib

_GPS_IFD = 0x8825
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_EXIF_HEADER = b"Exif\0\0"
_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\0"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# XMP's GPS properties (exif:GPSLatitude, exifEX:GPS..., as attributes or elements).
_XMP_GPS = [
    re.compile(rb'\s[\w.-]+:GPS\w*\s*=\s*"[^"]*"'),
    re.compile(rb"\s[\w.-]+:GPS\w*\s*=\s*'[^']*'"),
    re.compile(rb"<([\w.-]+:GPS\w*)\b[^>]*/>"),
    re.compile(rb"<([\w.-]+:GPS\w*)\b[^>]*>.*?</\1\s*>", re.DOTALL),
]


class UnreadableExif(ValueError):
    """The EXIF data is not a TIFF structure that can be walked safely."""


def strip_location(data: bytes, content_type: str) -> bytes:
    """The photo without its location (`data` itself when it has none)."""
    if content_type == "image/jpeg":
        return _strip_jpeg(data)
    if content_type == "image/png":
        return _strip_png(data)
    return data


def _strip_jpeg(data: bytes) -> bytes:
    parts, at, changed = [data[:2]], 2, False
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xFF:
            parts.append(data[at : at + 1])
            at += 1
            continue
        if marker == 0xDA or marker in (0x01, *range(0xD0, 0xD9)):
            break  # the first scan: no metadata segment follows that matters
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        segment, body = data[at : at + 2 + length], data[at + 4 : at + 2 + length]
        if marker == 0xE1 and body.startswith(_EXIF_HEADER):
            new = _EXIF_HEADER + _strip_tiff_or_drop(body[len(_EXIF_HEADER) :])
            segment = _jpeg_segment(marker, new) if len(new) > len(_EXIF_HEADER) else b""
        elif marker == 0xE1 and body.startswith(_XMP_HEADER):
            segment = _jpeg_segment(marker, _XMP_HEADER + _strip_xmp(body[len(_XMP_HEADER) :]))
        changed |= segment != data[at : at + 2 + length]
        parts.append(segment)
        at += 2 + length
    if not changed:
        return data
    return b"".join(parts) + data[at:]


def _jpeg_segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def _strip_png(data: bytes) -> bytes:
    if not data.startswith(_PNG_SIGNATURE):
        return data
    parts, at, changed = [_PNG_SIGNATURE], len(_PNG_SIGNATURE), False
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        chunk = data[at : at + 12 + length]
        if kind == b"IDAT":
            break
        if kind == b"eXIf":
            new = _strip_tiff_or_drop(body)
            chunk = _png_chunk(kind, new) if new else b""
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            chunk = _png_text_chunk(kind, body, chunk)
        changed |= chunk != data[at : at + 12 + length]
        parts.append(chunk)
        at += 12 + length
    if not changed:
        return data
    return b"".join(parts) + data[at:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_text_chunk(kind: bytes, body: bytes, chunk: bytes) -> bytes:
    """An XMP (iTXt XML:com.adobe.xmp) or ImageMagick EXIF (Raw profile
    type exif, hex) text chunk without its location; other chunks as they are."""
    keyword, _, rest = body.partition(b"\0")
    if kind == b"iTXt" and keyword == b"XML:com.adobe.xmp":
        compressed, method = rest[0:1], rest[1:2]
        language, _, rest2 = rest[2:].partition(b"\0")
        translated, _, text = rest2.partition(b"\0")
        xmp = zlib.decompress(text) if compressed == b"\x01" else text
        stripped = _strip_xmp(xmp)
        if stripped == xmp:
            return chunk
        text = zlib.compress(stripped) if compressed == b"\x01" else stripped
        return _png_chunk(kind, keyword + b"\0" + compressed + method + language + b"\0" + translated + b"\0" + text)
    if keyword in (b"Raw profile type exif", b"Raw profile type APP1") and kind in (b"tEXt", b"zTXt"):
        text = zlib.decompress(rest[1:]) if kind == b"zTXt" else rest
        try:
            _, name, size, hexdata = text.split(b"\n", 3)
            exif = bytes.fromhex(hexdata.decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return b""  # not readable as the profile it says it is: dropped, with whatever it held
        start = len(_EXIF_HEADER) if exif.startswith(_EXIF_HEADER) else 0
        stripped = exif[:start] + _strip_tiff_or_drop(exif[start:])
        if stripped == exif:
            return chunk
        if len(stripped) == start:
            return b""
        new = b"\n" + name + b"\n" + f"{len(stripped):8}".encode() + b"\n" + stripped.hex().encode() + b"\n"
        return _png_chunk(kind, keyword + b"\0" + (b"\0" + zlib.compress(new) if kind == b"zTXt" else new))
    return chunk


def _strip_xmp(xmp: bytes) -> bytes:
    for pattern in _XMP_GPS:
        xmp = pattern.sub(b"", xmp)
    return xmp


def _strip_tiff_or_drop(tiff: bytes) -> bytes:
    """The TIFF structure without its GPS IFD; b"" (the whole EXIF dropped)
    when it cannot be walked safely: then its location cannot be vouched for."""
    try:
        return strip_gps_ifd(tiff)
    except (UnreadableExif, struct.error, IndexError):
        return b""


def strip_gps_ifd(tiff: bytes) -> bytes:
    """EXIF's TIFF structure (from its II/MM header) without the GPS IFD."""
    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        raise UnreadableExif("not a TIFF header")
    order = "<" if tiff[:2] == b"II" else ">"

    def u16(at: int) -> int:
        return struct.unpack_from(order + "H", tiff, at)[0]

    def u32(at: int) -> int:
        return struct.unpack_from(order + "I", tiff, at)[0]

    ifd0 = u32(4)
    count = u16(ifd0)
    end = ifd0 + 2 + 12 * count + 4
    if end > len(tiff):
        raise UnreadableExif("IFD0 runs past the end")
    pointer = next((ifd0 + 2 + 12 * i for i in range(count) if u16(ifd0 + 2 + 12 * i) == _GPS_IFD), None)
    if pointer is None:
        return tiff
    out = bytearray(tiff)
    gps = u32(pointer + 8)
    if gps + 2 <= len(tiff):
        entries = u16(gps)
        if gps + 2 + 12 * entries + 4 > len(tiff):
            raise UnreadableExif("the GPS IFD runs past the end")
        for i in range(entries):
            entry = gps + 2 + 12 * i
            size = _TYPE_SIZES.get(u16(entry + 2), 1) * u32(entry + 4)
            if size > 4:
                value = u32(entry + 8)
                out[value : value + size] = bytes(len(out[value : value + size]))
        out[gps : gps + 2 + 12 * entries + 4] = bytes(2 + 12 * entries + 4)
    # IFD0 without the pointer: the entries after it, and the next IFD's offset, move up one place.
    out[pointer:end] = out[pointer + 12 : end] + bytes(12)
    struct.pack_into(order + "H", out, ifd0, count - 1)
    return bytes(out)
