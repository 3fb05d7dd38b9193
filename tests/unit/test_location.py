"""A photo's GPS location is taken out before it is stored (core/location.py),
from its EXIF and its XMP, in JPEG, PNG and the converted types; its
orientation and every other tag stay, and its pixels are not touched."""

import io
import struct
import zlib

import pytest
from PIL import Image

from chalicelib.core import images, location
from tests.support.imagegen import DATESTAMP, _writable, encode, exif_with_location, shared

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="48,51.49N" '
    b"exif:GPSLongitude='2,17.67E' exif:DateTimeOriginal=\"2024:05:01\">"
    b"<exif:GPSAltitude>35/1</exif:GPSAltitude><exif:GPSTimeStamp/>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def located(image: Image.Image) -> bool:
    """Whether Pillow finds a location in the image's EXIF or XMP."""
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp") or b""
    xmp = xmp.encode() if isinstance(xmp, str) else xmp
    return bool(image.getexif().get_ifd(0x8825)) or b"GPS" in xmp


@pytest.mark.parametrize("endian", ["<", ">"], ids=["little-endian", "big-endian"])
def test_a_jpeg_loses_its_location_and_keeps_everything_else(endian):
    sent = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=exif_with_location(endian=endian), xmp=XMP, quality=90)
    assert located(Image.open(io.BytesIO(sent)))
    upload = images.prepare_upload(sent)
    stored = Image.open(io.BytesIO(upload.data))
    assert DATESTAMP.encode() in sent and DATESTAMP.encode() not in upload.data
    assert not located(stored)
    assert stored.getexif()[0x0112] == 6 and stored.getexif()[0x010F] == "Faceprint test camera"
    assert b'exif:DateTimeOriginal="2024:05:01"' in stored.info["xmp"]
    assert stored.tobytes() == Image.open(io.BytesIO(sent)).tobytes()  # not re-encoded
    assert (upload.width, upload.height) == stored.size


def test_a_photo_without_a_location_is_stored_byte_for_byte():
    exif = Image.Exif()
    exif[0x0112] = 6
    sent = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=exif, xmp=b"<x:xmpmeta/>")
    assert images.prepare_upload(sent).data == sent
    png = encode(shared("Jim-Carrey.jpg"), "PNG")
    assert images.prepare_upload(png).data == png


def test_the_stage_may_keep_the_location_on_purpose():
    sent = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=exif_with_location(), xmp=XMP)
    assert images.prepare_upload(sent, keep_location=True).data == sent


def test_a_search_photo_is_left_as_it_is():
    sent = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=exif_with_location())
    assert images.prepare_search(sent) == sent  # nothing of it is stored


def test_a_png_loses_its_location_from_exif_and_xmp():
    exif = exif_with_location()
    image = shared("Jim-Carrey.jpg")
    out = io.BytesIO()
    from PIL import PngImagePlugin

    text = PngImagePlugin.PngInfo()
    text.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=True)
    image.save(out, "PNG", exif=exif, pnginfo=text)
    sent = out.getvalue()
    assert located(Image.open(io.BytesIO(sent)))
    stored = Image.open(io.BytesIO(images.prepare_upload(sent).data))
    stored.load()  # every chunk's CRC checks
    assert not located(stored) and stored.getexif()[0x0112] == 6
    assert stored.tobytes() == image.tobytes()


def test_imagemagicks_raw_exif_profile_in_a_png_loses_its_location():
    exif = exif_with_location().tobytes()
    profile = b"\nexif\n" + f"{len(exif):8}".encode() + b"\n" + exif.hex().encode() + b"\n"
    body = b"Raw profile type exif\0\0" + zlib.compress(profile)
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    plain = encode(shared("Jim-Carrey.jpg"), "PNG")
    sent = plain[:33] + chunk + plain[33:]  # after IHDR
    assert Image.open(io.BytesIO(sent)).getexif().get_ifd(0x8825)
    stored = Image.open(io.BytesIO(images.prepare_upload(sent).data))
    assert not stored.getexif().get_ifd(0x8825) and stored.getexif()[0x0112] == 6


@pytest.mark.parametrize("fmt", ["WEBP", "AVIF", "HEIF"])
def test_a_converted_photo_loses_its_location_and_is_turned_upright(fmt):
    turned = shared("Jim-Carrey.jpg").transpose(Image.Transpose.ROTATE_90)
    sent = encode(turned, _writable(fmt), exif=exif_with_location().tobytes(), xmp=XMP, quality=90)
    upload = images.prepare_upload(sent)
    stored = Image.open(io.BytesIO(upload.data))
    assert upload.content_type == "image/jpeg" and not located(stored)
    assert stored.getexif()[0x0112] == 1 and stored.getexif()[0x010F] == "Faceprint test camera"
    assert stored.size == shared("Jim-Carrey.jpg").size


def test_exif_that_cannot_be_walked_is_dropped_whole():
    """An IFD0 whose GPS pointer leads past the end: the location cannot be vouched for."""
    broken = bytearray(exif_with_location().tobytes())  # "Exif\0\0", then the TIFF structure
    pointer = broken.index(struct.pack("<HH", 0x8825, 4))
    struct.pack_into("<I", broken, pointer + 8, len(broken) - 6 - 8)  # the GPS IFD: 8 bytes before the end...
    struct.pack_into("<H", broken, len(broken) - 8, 5000)  # ...says it holds 5000 entries
    with pytest.raises(location.UnreadableExif, match="GPS IFD runs past the end"):
        location.strip_gps_ifd(bytes(broken[6:]))
    sent = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=bytes(broken))
    stored = images.prepare_upload(sent).data
    assert b"Exif\0\0" not in stored.split(b"\xff\xda")[0]
    Image.open(io.BytesIO(stored)).load()


def test_the_gps_ifd_is_gone_and_every_other_offset_still_reads():
    tiff = exif_with_location().tobytes()[6:]
    exif = Image.Exif()
    exif.load(b"Exif\0\0" + location.strip_gps_ifd(tiff))
    assert dict(exif) == {0x0112: 6, 0x010F: "Faceprint test camera"}
