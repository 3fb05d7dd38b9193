"""Measure real dlib descriptors on the shared photos, for the constants of
chalicelib/embedded/synthetic.py: `python scripts/calibrate_synthetic.py`
(needs dlib and the shared photos; FACEPRINT_FACES_DIR points elsewhere).

Group photos reuse faces pasted from the single-person photos: faces closer
than COPY_DISTANCE are one photo of one person and are counted once, so the
same-person figures come only from distinct photos of a person."""

import itertools
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from chalicelib.embedded.workers import FaceAnalyzer  # noqa: E402

FACES_DIR = Path(os.environ.get("FACEPRINT_FACES_DIR") or REPO.parent / "shared" / "faces")
COPY_DISTANCE = 0.2  # a pasted copy of the same photo: measured 0.03-0.13, distinct photos 0.25 and up


def distinct_faces() -> tuple[np.ndarray, list[str]]:
    """One descriptor per distinct photo of a face, with whose face it is."""
    people = json.loads((FACES_DIR / "people.json").read_text())["images"]
    analyzer = FaceAnalyzer(workers=2)
    try:
        found = {
            name: analyzer.analyze((FACES_DIR / name).read_bytes(), quality_filter="NONE").faces
            for name in sorted(people)
        }
    finally:
        analyzer.close()
    descriptors, labels = [], []
    # Single-person photos name their face; a group photo's faces are copies of
    # those, or else someone only group photos show (then: the photo's other people).
    for name, faces in sorted(found.items(), key=lambda item: len(people[item[0]])):
        for face in faces:
            near = [i for i, d in enumerate(descriptors) if np.linalg.norm(d - face.descriptor) < COPY_DISTANCE]
            if near:
                continue
            if len(people[name]) == 1:
                labels.append(people[name][0])
            else:
                labels.append(f"{name}#{len(descriptors)}")
            descriptors.append(face.descriptor)
    return np.array(descriptors, dtype=np.float64), labels


def main() -> None:
    x, labels = distinct_faces()
    identities = sorted(set(labels))
    means = np.array([x[[lab == who for lab in labels]].mean(axis=0) for who in identities])
    same = [np.linalg.norm(x[i] - x[j]) for i, j in itertools.combinations(range(len(x)), 2) if labels[i] == labels[j]]
    different = [
        np.linalg.norm(x[i] - x[j]) for i, j in itertools.combinations(range(len(x)), 2) if labels[i] != labels[j]
    ]
    own = [x[[lab == who for lab in labels]] for who in identities]
    residuals = np.concatenate([photos - photos.mean(axis=0) for photos in own])
    within = np.sqrt((residuals**2).sum() / max(1, len(x) - len(identities)) / x.shape[1])
    several = sum(1 for who in identities if labels.count(who) > 1)
    print(f"{len(x)} distinct faces, {len(identities)} people, {several} with several distinct photos")
    print(f"same person: n={len(same)} mean={np.mean(same):.3f} min={np.min(same):.3f} max={np.max(same):.3f}")
    print(
        f"different people: n={len(different)} mean={np.mean(different):.3f} std={np.std(different):.3f} "
        f"min={np.min(different):.3f} max={np.max(different):.3f}"
    )
    print(f"descriptor norm: mean={np.linalg.norm(x, axis=1).mean():.3f}; |value| max={np.abs(x).max():.3f}")
    print(f"within-person residual rms per dimension: {within:.4f}")
    np.set_printoptions(precision=3, suppress=True, linewidth=120, floatmode="fixed")
    print("MEAN (per dimension, over people):")
    print(repr(means.mean(axis=0)))
    print("SPREAD (per dimension std over people):")
    print(repr(means.std(axis=0, ddof=1)))


if __name__ == "__main__":
    main()
