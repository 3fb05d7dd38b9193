"""How a person should be matched on all of their faces together: the
figures behind the choice in chalicelib/embedded/people.py.

Every face of the shared photos is labelled with its person (a face in a
group photo takes the person of the portrait it matches at the default
threshold; the two faces no portrait names are told apart by where they
stand, people.json's order). Then, leaving each face out in turn, the
others are enrolled as people and the face is searched for with each way
of aggregating a person's similarities:

    best        the person's most similar face (what SearchFacesByImage gives)
    top2, top3  the mean of the person's 2 or 3 most similar faces
    mean        the mean over all of the person's faces
    centroid    the similarity to the mean of the person's descriptors

For each: how often the right person comes first, how often the right
person reaches the default threshold (80), how often someone else does
(a false match), and the mean margin between the right person and the
best other one.

    .venv/bin/python scripts/people_figures.py
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.core.limits import DEFAULT_THRESHOLD  # noqa: E402
from chalicelib.embedded.engine import similarity  # noqa: E402
from chalicelib.embedded.people import AGGREGATES  # noqa: E402
from chalicelib.embedded.workers import FaceAnalyzer  # noqa: E402
from tests.support.photos import label_faces, people, photo  # noqa: E402

# Group photos reuse the portraits' very faces: a face this similar to the
# query is the same picture, which the second protocol leaves out too.
DUPLICATE = 97.0


def main() -> None:
    analyzer = FaceAnalyzer()
    try:
        faces = []  # (photo, box left, descriptor)
        for name in sorted(people()):
            analysis = analyzer.analyze(photo(name), quality_filter="AUTO")
            faces += [(name, face.left / analysis.width, face.descriptor) for face in analysis.faces]
    finally:
        analyzer.close()
    matrix = np.stack([d for _, _, d in faces])
    scores = similarity(np.linalg.norm(matrix[:, None, :] - matrix[None, :, :], axis=2))
    who = label_faces([(name, left) for name, left, _ in faces], scores)
    print(f"faces: {len(faces)}, people: {len(set(who))}, threshold: {DEFAULT_THRESHOLD:g}")
    for i, (name, left, _) in enumerate(faces):
        print(f"  {name:42s} left {left:4.2f}  {who[i]}")
    for protocol, same_picture in (("each face left out", 101.0), ("and every copy of its picture", DUPLICATE)):
        limit = "" if same_picture > 100 else f" under {same_picture:g} similar"
        print(f"\n{protocol} (gallery: the other faces{limit})")
        print(
            f"{'aggregate':10s} {'right first':>12s} {'right >= 80':>12s} {'false >= 80':>12s}"
            f" {'margin':>7s} {'lowest right':>12s} {'highest other':>13s}"
        )
        for aggregate_name, aggregate in AGGREGATES.items():
            measure(aggregate_name, aggregate, who, matrix, scores, same_picture)


def measure(aggregate_name, aggregate, who, matrix, scores, same_picture: float) -> None:
    first = reached = false = queries = 0
    margins, rights, others = [], [], []
    for q in range(len(who)):
        gallery: dict[str, list[int]] = {}
        for j in range(len(who)):
            if j != q and scores[q, j] < same_picture:
                gallery.setdefault(who[j], []).append(j)
        person_scores = {person: aggregate(scores[q, idx], matrix[idx], matrix[q]) for person, idx in gallery.items()}
        best_other = max(s for p, s in person_scores.items() if p != who[q])
        others.append(best_other)
        false += best_other >= DEFAULT_THRESHOLD
        if who[q] in person_scores:
            queries += 1
            right = person_scores[who[q]]
            rights.append(right)
            first += right > best_other
            reached += right >= DEFAULT_THRESHOLD
            margins.append(right - best_other)
    print(
        f"{aggregate_name:10s} {first:>6d} of {queries:<3d} {reached:>6d} of {queries:<3d}"
        f" {false:>6d} of {len(who):<3d} {np.mean(margins):7.2f} {min(rights):12.2f} {max(others):13.2f}"
    )


if __name__ == "__main__":
    main()
