"""Decoding bounds (core/decoding.py): decompression bombs under the 50 MP
limit are refused from their headers, a JPEG of thousands of scans from its
bytes, a decode that runs too long is stopped, and only a few decodes run
at once. scripts/bench_decoding.py measures what each costs."""

import io
import threading

import pytest
from PIL import Image

from chalicelib.core import decoding, images, pixels
from chalicelib.core.errors import ImageTooComplex, PayloadTooLarge, ServiceUnavailable
from chalicelib.core.limits import MAX_JPEG_SCANS
from tests.support import bombs
from tests.support.imagegen import encode, shared
from tests.support.photos import photo


@pytest.mark.parametrize(
    ("bomb", "what"),
    [
        (lambda: bombs.webp_bomb(), "196 MB"),  # 34 bytes: 7000x7000 RGBA
        (lambda: bombs.png16_bomb(), "392 MB"),  # 381 KB: 7000x7000 RGBA, 16 bits a channel
        (lambda: bombs.png16_bomb(6500, 6500, bits=8), "169 MB"),  # alpha counts
    ],
    ids=["webp-rgba", "png-16-bit-rgba", "png-8-bit-rgba"],
)
def test_a_bomb_under_50_megapixels_is_refused_by_its_decoded_size(bomb, what):
    data = bomb()
    for step in (images.prepare_upload, images.prepare_search, lambda d: pixels.decode_rgb(d, 4_000_000)):
        with pytest.raises(PayloadTooLarge, match=what):
            step(data)


def test_the_budget_counts_channels_and_bits_from_the_header():
    def size(image: Image.Image, fmt: str = "PNG") -> int:
        return decoding.decoded_bytes(Image.open(io.BytesIO(encode(image, fmt))))

    assert size(Image.new("RGB", (100, 10))) == 3000
    assert size(Image.new("RGBA", (100, 10))) == 4000
    assert size(Image.new("L", (100, 10))) == 1000
    assert size(Image.new("I;16", (100, 10))) == 2000
    assert decoding.decoded_bytes(Image.open(io.BytesIO(bombs.png16_bomb(100, 10)))) == 8000


def test_a_50_megapixel_rgb_photo_is_within_the_budget():
    decoding.check_budget(Image.new("RGB", (8660, 5773)))  # 49.99 MP, 150 MB
    with pytest.raises(PayloadTooLarge):
        decoding.check_budget(Image.new("RGBA", (8660, 5773)))


def test_a_jpeg_of_too_many_scans_is_refused_before_it_is_decoded():
    data = bombs.many_scans_jpeg(MAX_JPEG_SCANS + 1, 64, 64)
    for step in (images.prepare_upload, images.prepare_search, lambda d: pixels.decode_rgb(d, 4_000_000)):
        with pytest.raises(ImageTooComplex, match=f"{MAX_JPEG_SCANS + 1} scans"):
            step(data)


def test_real_jpegs_baseline_and_progressive_pass_the_scan_count():
    images.prepare_upload(photo("Lawrence2.jpg"))  # progressive, 10 scans
    images.prepare_upload(encode(shared("Jim-Carrey.jpg"), "JPEG", progressive=True, quality=90))
    images.prepare_upload(bombs.many_scans_jpeg(MAX_JPEG_SCANS, 64, 64))


def test_scans_of_an_exif_thumbnail_are_not_counted():
    """The thumbnail in an APP1 segment is a JPEG of its own, before the first scan."""
    thumbnail = bombs.many_scans_jpeg(MAX_JPEG_SCANS, 16, 16)
    exif = Image.Exif()
    exif[0x0112] = 1
    data = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=exif.tobytes() + thumbnail)
    decoding.check_jpeg_scans(data)


def test_a_decode_past_the_time_limit_is_stopped():
    data = bombs.png16_bomb(4000, 2000, bits=8)  # read in pieces: the limit is checked between them
    image = Image.open(decoding.DeadlineReader(data))
    with pytest.raises(ImageTooComplex, match="took over"), decoding.decode_within(image, seconds=0.001):
        image.load()
    image = Image.open(decoding.DeadlineReader(data))
    with decoding.decode_within(image, seconds=30):
        image.load()


def test_beyond_the_decode_slots_a_decode_waits_then_gets_a_503(monkeypatch):
    monkeypatch.setattr(decoding, "SLOT_WAIT_SECONDS", 0.2)
    held, release = threading.Barrier(decoding.decode_slots() + 1), threading.Event()

    def hold():
        with decoding.decode_slot():
            held.wait()
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(decoding.decode_slots())]
    for thread in holders:
        thread.start()
    held.wait()
    try:
        with pytest.raises(ServiceUnavailable, match="at once"):
            images.prepare_upload(photo("Jim-Carrey.jpg"))
    finally:
        release.set()
        for thread in holders:
            thread.join()
    images.prepare_upload(photo("Jim-Carrey.jpg"))


def test_the_slots_fit_the_machine():
    assert 1 <= decoding.decode_slots() <= (__import__("os").cpu_count() or 1)


def test_transparency_is_still_laid_over_white_once_scaled():
    half = Image.new("RGBA", (4000, 2000), (0, 0, 0, 0))
    half.paste((200, 10, 10, 255), (0, 0, 2000, 2000))
    rgb = pixels.decode_rgb(encode(half), 1_000_000)
    assert rgb.mode == "RGB" and rgb.size == (1414, 707)
    assert rgb.getpixel((100, 100)) == (200, 10, 10) and rgb.getpixel((1300, 600)) == (255, 255, 255)
