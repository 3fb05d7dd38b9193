"""What the API accepts, below HTTP: type sniffing, the metadata budget,
and pillow-heif loaded only when a HEIC arrives."""

import subprocess
import sys

import pytest

from chalicelib.core import limits
from chalicelib.core.images import prepare_upload, sniff
from tests.support import imagegen
from tests.support.photos import REPO, photo


@pytest.mark.parametrize("content_type", list(imagegen.CONVERTED))
def test_each_converted_type_is_known_by_its_first_bytes(content_type):
    data = imagegen.phone_photo("Lawrence2.jpg", content_type)
    assert sniff(data) == (imagegen.CONVERTED[content_type], content_type)


def test_a_generic_heif_file_is_image_heif_and_other_iso_media_is_not_a_photo():
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = b"ftyp" + major + b"\0\0\0\0" + b"".join(compatible)
        return (len(body) + 4).to_bytes(4, "big") + body + b"\0" * 64

    assert sniff(ftyp(b"mif1", b"mif1", b"miaf")) == ("HEIF", "image/heif")
    assert sniff(ftyp(b"avif", b"mif1", b"miaf")) == ("AVIF", "image/avif")
    assert sniff(ftyp(b"isom", b"iso2", b"mp41")) is None  # an MP4 video


def test_jpeg_and_png_pass_through_untouched():
    jpeg = photo("Lawrence2.jpg")
    png = imagegen.encode(imagegen.shared("Lawrence2.jpg"))
    for data, content_type in ((jpeg, "image/jpeg"), (png, "image/png")):
        upload = prepare_upload(data)
        assert upload.data is data and not upload.converted
        assert (upload.content_type, upload.original_content_type) == (content_type, content_type)


def test_the_original_type_fits_in_what_the_metadata_limit_leaves_free():
    longest = max(len(content_type) for content_type in limits.CONVERTED_TYPES)
    assert len(limits.RESERVED_METADATA) + longest <= limits.RESERVED_METADATA_BYTES
    assert limits.MAX_METADATA_BYTES + limits.RESERVED_METADATA_BYTES == 2 * 1024  # S3's user-metadata limit


def test_importing_the_app_does_not_load_pillow_heif():
    """Lambda cold starts pay for every import: libheif waits for a HEIC."""
    check = "import sys, app; assert 'pillow_heif' not in sys.modules, 'pillow_heif imported'; print('ok')"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
