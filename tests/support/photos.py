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
