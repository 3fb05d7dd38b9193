"""People in the embedded engine: Rekognition's Users API over the local
collection (users and their faces in SQLite, beside the collection),
SearchFaces, CompareFaces, and the similarity graph that suggested people
are grouped from. It answers in those operations' shapes, like
aws/rekognition.py, and reaches the collection only through
LocalEngine.descriptors and LocalEngine.nearest.

How a person is matched on all of their faces together: by the best of
their faces' similarities to the query (AGGREGATE). scripts/people_figures.py
measures five ways on the shared photos, leaving each face out in turn
(and then also every copy of its picture, which the group photos reuse):
all five put the right person first every time and let no one else reach
the default threshold; the best face keeps the widest margin between the
right person and the best other one (18.8 points against 18.0 for the
mean of the top 2, 17.7 for the centroid, 16.8 for the mean of all faces)
and the highest lowest genuine score. It also makes a person's similarity
in POST /search/people the similarity of their best match in POST
/search. Since a person reaches the threshold exactly when one of their
faces does, the candidates come from the faces nearest the query.
"""

import numpy as np

from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.core.limits import MAX_FACES, MAX_FACES_PER_PERSON
from chalicelib.core.ports import PeopleEngine
from chalicelib.embedded.analysis import MODEL_VERSION, Analysis, Face
from chalicelib.embedded.database import Database
from chalicelib.embedded.engine import LocalEngine, bounding_box, face_detail, max_distance, similarity
from chalicelib.embedded.workers import FaceAnalyzer

AGGREGATE = "best"  # one of AGGREGATES: see above
# Faces looked at to find the people a query may be (the nearest faces'
# owners); each candidate is then scored on all of their faces.
CANDIDATE_FACES = 1000
_BLOCK = 512  # rows of the pairwise distance matrix computed at a time

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collection_users (
    user_id TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS collection_user_faces (
    face_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS collection_user_faces_by_user ON collection_user_faces (user_id)
"""


def _top(k: int):
    def mean_of_top(scores: np.ndarray, descriptors: np.ndarray, query: np.ndarray) -> float:
        return float(np.sort(scores)[::-1][:k].mean())

    return mean_of_top


# Ways to score a person from the similarities of their faces to a query
# (scores), their descriptors and the query's: the candidates measured.
AGGREGATES = {
    "best": lambda scores, descriptors, query: float(scores.max()),
    "top2": _top(2),
    "top3": _top(3),
    "mean": lambda scores, descriptors, query: float(scores.mean()),
    "centroid": lambda scores, descriptors, query: float(similarity(np.linalg.norm(descriptors.mean(axis=0) - query))),
}


def person_similarity(query: np.ndarray, descriptors: np.ndarray) -> float:
    """How much the face `query` looks like a person whose faces have
    `descriptors` (one per row), aggregated as AGGREGATE says."""
    scores = similarity(np.linalg.norm(descriptors - query, axis=1))
    return AGGREGATES[AGGREGATE](scores, descriptors, query)


def similarity_graph(ids: list[str], matrix: np.ndarray, threshold: float) -> dict[str, dict[str, float]]:
    """Each face's neighbours (similarity at least `threshold`) among the
    rows of `matrix`, computed a block of rows at a time."""
    graph: dict[str, dict[str, float]] = {face_id: {} for face_id in ids}
    matrix = matrix.astype(np.float64)
    squares = (matrix**2).sum(axis=1)
    for start in range(0, len(ids), _BLOCK):
        block = matrix[start : start + _BLOCK]
        # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b: a block of rows against all, in memory of rows x faces.
        squared = squares[start : start + _BLOCK, None] + squares[None, :] - 2.0 * block @ matrix.T
        scores = similarity(np.sqrt(np.maximum(squared, 0.0)))
        for row, column in zip(*np.nonzero(scores >= threshold), strict=True):
            i = start + int(row)
            if i != column:
                graph[ids[i]][ids[int(column)]] = float(scores[row, column])
    return graph


def compared_face(face: Face, analysis: Analysis) -> dict:
    """Rekognition's ComparedFace."""
    detail = face_detail(face, analysis)
    return {name: detail[name] for name in ("BoundingBox", "Confidence", "Pose", "Quality")}


def compare(source: Analysis, target: Analysis, threshold: float) -> dict:
    """CompareFaces' output for two analysed photos (source: its largest face)."""
    if not source.faces:
        return {"FaceMatches": [], "UnmatchedFaces": []}
    face = source.faces[0]
    compared = target.faces[:MAX_FACES]  # CompareFaces looks at the 100 largest
    scores = (
        similarity(np.linalg.norm(np.stack([f.descriptor for f in compared]) - face.descriptor, axis=1))
        if compared
        else np.zeros(0)
    )
    order = np.argsort(-scores, kind="stable")
    return {
        "SourceImageFace": {"BoundingBox": bounding_box(face, source), "Confidence": face.quality.confidence},
        "FaceMatches": [
            {"Similarity": float(scores[i]), "Face": compared_face(compared[i], target)}
            for i in order
            if scores[i] >= threshold
        ],
        "UnmatchedFaces": [compared_face(compared[i], target) for i in order if scores[i] < threshold],
    }


class LocalPeople(PeopleEngine):
    def __init__(self, db: Database, engine: LocalEngine, analyzer: FaceAnalyzer) -> None:
        self._db = db
        self._engine = engine
        self._analyzer = analyzer
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.write(statement)

    def create_user(self, user_id: str) -> None:
        self._db.write("INSERT OR IGNORE INTO collection_users (user_id) VALUES (?)", (user_id,))

    def delete_user(self, user_id: str) -> None:
        with self._db.transaction():
            self._db.write("DELETE FROM collection_user_faces WHERE user_id = ?", (user_id,))
            self._db.write("DELETE FROM collection_users WHERE user_id = ?", (user_id,))

    def associate_faces(self, user_id: str, face_ids: list[str], threshold: float) -> dict:
        """Each face in turn: refused when it is not in the collection,
        belongs to another user, or (once the user has faces, those of this
        request included) looks like the user less than `threshold`."""
        associated, refused = [], []
        with self._db.transaction(immediate=True):
            self._require_user(user_id)
            present = self._engine.descriptors(face_ids)
            owners = self._owners(list(present))
            own = list(self._engine.descriptors(self._faces_of(user_id)).values())
            for face_id in dict.fromkeys(face_ids):
                if refusal := _not_free(face_id, present, owners, user_id):
                    refused.append(refusal)
                elif owners.get(face_id) == user_id:
                    continue  # already the user's: ignored, as Rekognition does
                elif own and (score := person_similarity(present[face_id], np.stack(own))) < threshold:
                    refused.append(
                        {"FaceId": face_id, "UserId": user_id, "Confidence": score, "Reasons": ["LOW_MATCH_CONFIDENCE"]}
                    )
                elif len(own) >= MAX_FACES_PER_PERSON:
                    raise BadRequest(f"Person {user_id!r} has {MAX_FACES_PER_PERSON} faces, the most one can have.")
                else:
                    self._db.write(
                        "INSERT OR REPLACE INTO collection_user_faces (face_id, user_id) VALUES (?, ?)",
                        (face_id, user_id),
                    )
                    own.append(present[face_id])
                    associated.append({"FaceId": face_id})
        return {
            "AssociatedFaces": associated,
            "UnsuccessfulFaceAssociations": refused,
            "UserStatus": "ACTIVE" if own else "CREATED",
        }

    def disassociate_faces(self, user_id: str, face_ids: list[str]) -> dict:
        done, refused = [], []
        with self._db.transaction(immediate=True):
            self._require_user(user_id)
            present = self._engine.descriptors(face_ids)
            owners = self._owners(list(present))
            for face_id in dict.fromkeys(face_ids):
                if refusal := _not_free(face_id, present, owners, user_id):
                    refused.append(refusal)
                elif owners.get(face_id) == user_id:
                    self._db.write("DELETE FROM collection_user_faces WHERE face_id = ?", (face_id,))
                    done.append({"FaceId": face_id})
            status = "ACTIVE" if self._engine.descriptors(self._faces_of(user_id)) else "CREATED"
        return {"DisassociatedFaces": done, "UnsuccessfulFaceDisassociations": refused, "UserStatus": status}

    def search_users_by_image(self, data: bytes, threshold: float, max_users: int) -> dict:
        analysis = self._analyzer.analyze(data, searching=True)  # the faces turned to the camera
        if not analysis.faces:
            return {"UserMatches": [], "FaceModelVersion": MODEL_VERSION, "UnsearchedFaces": []}
        largest, *others = analysis.faces
        return {
            "UserMatches": self._match_users(largest.descriptor, threshold, max_users),
            "FaceModelVersion": MODEL_VERSION,
            "SearchedFace": {"FaceDetail": face_detail(largest, analysis)},
            "UnsearchedFaces": [
                {"FaceDetails": face_detail(face, analysis), "Reasons": ["FACE_NOT_LARGEST"]} for face in others
            ],
        }

    def search_users(self, face_id: str, threshold: float, max_users: int) -> dict:
        descriptor = self._descriptor(face_id)
        return {
            "UserMatches": self._match_users(descriptor, threshold, max_users),
            "FaceModelVersion": MODEL_VERSION,
            "SearchedFace": {"FaceId": face_id},
        }

    def search_faces(self, face_id: str, threshold: float, max_faces: int) -> dict:
        descriptor = self._descriptor(face_id)
        nearest = [
            (face, distance)
            for face, distance in self._engine.nearest(descriptor, max_distance(threshold), max_faces + 1)
            if face["FaceId"] != face_id
        ][:max_faces]
        owners = self._owners([face["FaceId"] for face, _ in nearest])
        matches = []
        for face, distance in nearest:
            owner = owners.get(face["FaceId"])
            matches.append(
                {
                    "Similarity": float(similarity(np.float64(distance))),
                    "Face": {**face, "UserId": owner} if owner else face,
                }
            )
        return {"SearchedFaceId": face_id, "FaceMatches": matches, "FaceModelVersion": MODEL_VERSION}

    def compare_faces(self, source: bytes, target: bytes, threshold: float) -> dict:
        source_analysis = self._analyzer.analyze(source, largest_only=True)
        if not source_analysis.faces:
            return compare(source_analysis, source_analysis, threshold)
        return compare(source_analysis, self._analyzer.analyze(target), threshold)

    def owners(self, face_ids: list[str]) -> dict[str, str | None]:
        present = self._engine.descriptors(face_ids)
        owners = self._owners(list(present))
        return {face_id: owners.get(face_id) for face_id in present}

    def faces_of_user(self, user_id: str) -> list[str]:
        return sorted(self._engine.descriptors(self._faces_of(user_id)))

    def list_users(self) -> list[str]:
        return [row["user_id"] for row in self._db.read("SELECT user_id FROM collection_users ORDER BY user_id")]

    def similar_faces(self, face_ids: list[str], threshold: float) -> dict[str, dict[str, float]]:
        found = self._engine.descriptors(face_ids)
        ids = [face_id for face_id in dict.fromkeys(face_ids) if face_id in found]
        if not ids:
            return {}
        return similarity_graph(ids, np.stack([found[i] for i in ids]), threshold)

    def _match_users(self, descriptor: np.ndarray, threshold: float, max_users: int) -> list[dict]:
        """UserMatches: the users the nearest faces belong to, scored on all
        of their faces, at or above `threshold`, best first."""
        nearest = self._engine.nearest(descriptor, max_distance(threshold), CANDIDATE_FACES)
        candidates = set(self._owners([face["FaceId"] for face, _ in nearest]).values())
        scored = []
        for user_id in sorted(candidates):
            descriptors = list(self._engine.descriptors(self._faces_of(user_id)).values())
            if descriptors:
                scored.append((person_similarity(descriptor, np.stack(descriptors)), user_id))
        scored.sort(key=lambda pair: -pair[0])
        return [
            {"Similarity": score, "User": {"UserId": user_id, "UserStatus": "ACTIVE"}}
            for score, user_id in scored[:max_users]
            if score >= threshold
        ]

    def _descriptor(self, face_id: str) -> np.ndarray:
        found = self._engine.descriptors([face_id])
        if face_id not in found:
            raise NotFound(f"No face {face_id!r} in the collection.")
        return found[face_id]

    def _require_user(self, user_id: str) -> None:
        if not self._db.read("SELECT 1 FROM collection_users WHERE user_id = ?", (user_id,)):
            raise NotFound(f"No person {user_id!r} in the collection.")

    def _faces_of(self, user_id: str) -> list[str]:
        rows = self._db.read("SELECT face_id FROM collection_user_faces WHERE user_id = ?", (user_id,))
        return [row["face_id"] for row in rows]

    def _owners(self, face_ids: list[str]) -> dict[str, str]:
        owners: dict[str, str] = {}
        for start in range(0, len(face_ids), 500):
            chunk = face_ids[start : start + 500]
            rows = self._db.read(
                f"SELECT face_id, user_id FROM collection_user_faces WHERE face_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            owners.update({row["face_id"]: row["user_id"] for row in rows})
        return owners


def _not_free(face_id: str, present: dict, owners: dict, user_id: str) -> dict | None:
    """Why the user cannot have (or give up) this face, in Rekognition's
    shape: it is not in the collection, or it is another user's."""
    if face_id not in present:
        return {"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]}
    owner = owners.get(face_id)
    if owner is not None and owner != user_id:
        return {"FaceId": face_id, "UserId": owner, "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
    return None
