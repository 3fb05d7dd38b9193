"""The shared test photos (never committed: they are not ours to
redistribute). FACEPRINT_FACES_DIR points at them; make test checks first."""

import json
import os
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FACES_DIR = Path(os.environ.get("FACEPRINT_FACES_DIR") or REPO.parent / "shared" / "faces")


@cache
def people() -> dict[str, list[str]]:
    """Photo name -> the people in it (people.json)."""
    return json.loads((FACES_DIR / "people.json").read_text())["images"]


@cache
def photo(name: str) -> bytes:
    return (FACES_DIR / name).read_bytes()


def photos_with(person: str) -> set[str]:
    return {name for name, who in people().items() if person in who}
