"""The photos that ship in tests/faces are the ones SOURCES.md credits,
byte for byte as their packages ship them, and people.json names each."""

import hashlib
import re

from tests.support.photos import SHIPPED_DIR, shipped_people

PHOTO = re.compile(r"`([\w.-]+\.(?:jpg|png))`")
SHA256 = re.compile(r"`([0-9a-f]{64})`")


def credited() -> dict[str, str]:
    """Photo name -> its SHA-256, from SOURCES.md's tables."""
    rows = [line for line in (SHIPPED_DIR / "SOURCES.md").read_text().splitlines() if line.startswith("| `")]
    return {
        name: digest
        for row in rows
        for name, digest in zip(PHOTO.findall(row.split("|")[1]), SHA256.findall(row), strict=True)
    }


def test_every_shipped_photo_is_credited_and_unaltered():
    photos = {path.name for path in SHIPPED_DIR.iterdir() if path.suffix in (".jpg", ".png")}
    assert photos == set(credited()) == set(shipped_people())
    for name, digest in credited().items():
        assert hashlib.sha256((SHIPPED_DIR / name).read_bytes()).hexdigest() == digest, name
