"""The test photos: those that ship in tests/faces (public domain or CC0,
tests/faces/SOURCES.md), and the larger shared set, which is not ours to
redistribute and so is never committed: FACEPRINT_FACES_DIR, or
../shared/faces beside the clone. Both are a folder of photos with a
people.json naming who is in each. Without the shared set, a test that asks
for one of its photos skips, saying so in one line."""

import json
import os
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_DIR = REPO / "tests" / "faces"
FACES_DIR = Path(os.environ.get("FACEPRINT_FACES_DIR") or REPO.parent / "shared" / "faces")


def shared_present() -> bool:
    return (FACES_DIR / "people.json").is_file()


def need_shared(what: str) -> None:
    """Skip the test (or, at import, its whole module) unless the shared photos are there."""
    if not shared_present():
        pytest.skip(
            f"needs the shared test photos ({what}): put the faces folder (photos + people.json) "
            "at ../shared/faces, or name it with FACEPRINT_FACES_DIR",
            allow_module_level=True,
        )


@cache
def people() -> dict[str, list[str]]:
    """The shared set: photo name -> the people in it (people.json)."""
    need_shared("people.json")
    return json.loads((FACES_DIR / "people.json").read_text())["images"]


@cache
def shipped_people() -> dict[str, list[str]]:
    """The photos in tests/faces: photo name -> the people in it."""
    return json.loads((SHIPPED_DIR / "people.json").read_text())["images"]


def photo_path(name: str) -> Path:
    """Where the test photo `name` is: in tests/faces, else in the shared set."""
    if (SHIPPED_DIR / name).is_file():
        return SHIPPED_DIR / name
    need_shared(name)
    return FACES_DIR / name


@cache
def photo(name: str) -> bytes:
    return photo_path(name).read_bytes()


def photos_with(person: str) -> set[str]:
    return {name for name, who in people().items() if person in who}


def label_faces(faces: list[tuple[str, float]], scores, threshold: float = 80.0) -> list[str]:
    """Who each face is: `faces` are (photo name, box Left) and `scores` the
    similarity of every face to every other (a matrix, or a function of two
    indexes). A portrait's face is its person; a face of a group photo is
    the person of the portrait face it matches best at `threshold`; the
    faces no portrait names (Justin and Barack) take the photo's remaining
    people in people.json's order, left to right, as they stand."""
    score = scores if callable(scores) else (lambda i, j: float(scores[i][j]))
    who: list[str | None] = [None] * len(faces)
    portraits = [i for i, (name, _) in enumerate(faces) if len(people()[name]) == 1]
    for i in portraits:
        who[i] = people()[faces[i][0]][0]
    for i, (name, _) in enumerate(faces):
        if who[i] is None and portraits:
            best = max(portraits, key=lambda j: score(i, j))
            if score(i, best) >= threshold and who[best] in people()[name]:
                who[i] = who[best]
    for name in {name for name, _ in faces}:
        unnamed = sorted((left, i) for i, (photo_name, left) in enumerate(faces) if photo_name == name and not who[i])
        left_over = [person for person in people()[name] if person not in who_in(name, faces, who)]
        for (_, i), person in zip(unnamed, left_over, strict=False):
            who[i] = person
    return [person or "?" for person in who]


def who_in(name: str, faces: list[tuple[str, float]], who: list[str | None]) -> set[str]:
    return {who[i] for i, (photo_name, _) in enumerate(faces) if photo_name == name and who[i]}
