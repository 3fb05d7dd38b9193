"""The proof of an erasure that does not trust the stores' reads: a
person's name looked for in every byte of an embedded archive's (or a
backup's) files: the database and its write-ahead log, the photos'
descriptions, the manifests, logs and journals. The photos' own bytes are
left out (a name written inside a photo, in its EXIF, is the photo's)."""

import json
from pathlib import Path

CHUNK = 1 << 20


def naming(folder: Path, name: str | None) -> list[str]:
    """The files under `folder` that hold `name` (any case; as UTF-8 or as
    JSON writes it), by path."""
    if not name or not name.strip() or not folder.is_dir():
        return []
    name = name.strip().lower()
    needles = {name.encode(), json.dumps(name).strip('"').encode()}
    return [str(path) for path in sorted(folder.rglob("*")) if _searched(path) and _holds(path, needles)]


def _searched(path: Path) -> bool:
    if not path.is_file():
        return False
    return path.parent.name != "photos" or path.suffix == ".json"


def _holds(path: Path, needles: set[bytes]) -> bool:
    overlap = max(len(needle) for needle in needles) - 1
    tail = b""
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            window = (tail + chunk).lower()
            if any(needle in window for needle in needles):
                return True
            tail = window[-overlap:] if overlap else b""
    return False
