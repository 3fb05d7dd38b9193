"""The embedded engine: dlib faces, descriptors in SQLite, search in-process.
It answers with Rekognition's output shapes, so the service cannot tell it
from engines/rekognition.py.

Similarity: Rekognition reports 0-100; dlib compares descriptors by
Euclidean distance, and 0.6 is dlib's standard "same person" cut-off. We map
distance d to similarity = 100 * (1 - d / 3), clamped to 0-100, so that the
default threshold 80 is exactly d = 0.6 (90 is d = 0.3, 70 is d = 0.9).
"""

import hashlib
import json
import threading
import uuid

import numpy as np

from chalicelib.core.errors import NotFound
from chalicelib.core.limits import MAX_FACES
from chalicelib.core.ports import FaceEngine, Page, PhotoStore, PhotoVersion
from chalicelib.embedded.analysis import MODEL_VERSION, Analysis, Face
from chalicelib.embedded.database import Database
from chalicelib.embedded.paging import decode_token, encode_token
from chalicelib.embedded.workers import FaceAnalyzer

DISTANCE_AT_ZERO_SIMILARITY = 3.0
_SQL_BATCH = 500  # ids per IN (...) query, well under SQLite's variable limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collection (
    face_id TEXT PRIMARY KEY,
    face TEXT NOT NULL,
    descriptor BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS collection_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT OR IGNORE INTO collection_version (id, version) VALUES (1, 0)
"""


def similarity(distance: np.ndarray) -> np.ndarray:
    return np.clip(100.0 * (1.0 - distance / DISTANCE_AT_ZERO_SIMILARITY), 0.0, 100.0)


def best_matches(
    descriptor: np.ndarray, faces: list[dict], matrix: np.ndarray, threshold: float, max_faces: int
) -> list[dict]:
    """FaceMatches: the faces (rows of `matrix`) at or above `threshold`, best first."""
    if not faces:
        return []
    scores = similarity(np.linalg.norm(matrix - descriptor, axis=1))
    best = np.argsort(-scores, kind="stable")[:max_faces]
    return [{"Similarity": float(scores[i]), "Face": faces[i]} for i in best if scores[i] >= threshold]


class LocalEngine(FaceEngine):
    """`quality_filter` and `max_faces` mean what IndexFaces' QualityFilter
    and MaxFaces mean (quality.py)."""

    def __init__(
        self,
        db: Database,
        photos: PhotoStore,
        analyzer: FaceAnalyzer,
        quality_filter: str = "AUTO",
        max_faces: int = MAX_FACES,
    ) -> None:
        self._db = db
        self._photos = photos
        self._analyzer = analyzer
        self._quality_filter = quality_filter
        self._max_faces = max_faces
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.write(statement)
        self._vectors = _Vectors(db)

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        data = self._photos.read(photo.key)
        if hashlib.md5(data).hexdigest() != photo.etag:
            raise NotFound(f"The photo {photo.key!r} was replaced while it was being indexed.")
        analysis = self._analyzer.analyze(data, quality_filter=self._quality_filter, max_faces=self._max_faces)
        image_id = str(uuid.uuid4())
        records = [_face_record(face, analysis, image_id, external_image_id) for face in analysis.faces]
        with self._db.transaction():
            self._db.write_many(
                "INSERT INTO collection (face_id, face, descriptor) VALUES (?, ?, ?)",
                [
                    (record["Face"]["FaceId"], json.dumps(record["Face"]), face.descriptor.astype(np.float32).tobytes())
                    for record, face in zip(records, analysis.faces, strict=False)
                ],
            )
            self._bump_version()
        return {
            "FaceRecords": records,
            "FaceModelVersion": MODEL_VERSION,
            "UnindexedFaces": [unindexed_face(face, analysis) for face in analysis.declined],
        }

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        analysis = self._analyzer.analyze(data, largest_only=True)
        if not analysis.faces:
            return {"FaceMatches": [], "FaceModelVersion": MODEL_VERSION}
        return self._search(analysis.faces[0], analysis, threshold, max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        analysis = self._analyzer.analyze(data)
        faces = sorted(analysis.faces, key=lambda f: f.width * f.height, reverse=True)
        return [self._search(face, analysis, threshold, max_faces) for face in faces]

    def _search(self, face: Face, analysis: Analysis, threshold: float, max_faces: int) -> dict:
        stored, matrix = self._vectors.snapshot()
        matches = best_matches(face.descriptor, stored, matrix, threshold, max_faces)
        return {
            "SearchedFaceBoundingBox": bounding_box(face, analysis),
            "SearchedFaceConfidence": face.quality.confidence,
            "FaceMatches": matches,
            "FaceModelVersion": MODEL_VERSION,
        }

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        rows = self._db.read(
            "SELECT face_id, face FROM collection WHERE face_id > ? ORDER BY face_id LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        faces = [json.loads(row["face"]) for row in rows[:limit]]
        return Page(faces, encode_token(rows[limit - 1]["face_id"]) if len(rows) > limit else None)

    def delete_faces(self, face_ids: list[str]) -> None:
        if not face_ids:
            return
        with self._db.transaction():
            self._db.write_many("DELETE FROM collection WHERE face_id = ?", [(i,) for i in face_ids])
            self._bump_version()

    def descriptors(self, face_ids: list[str]) -> dict[str, np.ndarray]:
        """The descriptors of those of `face_ids` the collection holds (for
        embedded/people.py)."""
        found: dict[str, np.ndarray] = {}
        ids = list(dict.fromkeys(face_ids))
        for start in range(0, len(ids), _SQL_BATCH):
            chunk = ids[start : start + _SQL_BATCH]
            rows = self._db.read(
                f"SELECT face_id, descriptor FROM collection WHERE face_id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update({row["face_id"]: np.frombuffer(row["descriptor"], dtype=np.float32) for row in rows})
        return found

    def nearest(self, descriptor: np.ndarray, max_distance: float, limit: int) -> list[tuple[dict, float]]:
        """The collection's faces (Face records) within `max_distance` of
        `descriptor`, nearest first, at most `limit` (for embedded/people.py)."""
        stored, matrix = self._vectors.snapshot()
        if not stored:
            return []
        distances = np.linalg.norm(matrix - descriptor, axis=1)
        order = np.argsort(distances, kind="stable")[:limit]
        return [(stored[i], float(distances[i])) for i in order if distances[i] <= max_distance]

    def describe(self) -> dict:
        count = self._db.read("SELECT count(*) AS n FROM collection")[0]["n"]
        return {"engine": "local", "model": MODEL_VERSION, "faces": count}

    def _bump_version(self) -> None:
        self._db.write("UPDATE collection_version SET version = version + 1 WHERE id = 1")


class _Vectors:
    """The collection's descriptors as one matrix, reloaded when the
    collection's version changes (by any thread or process)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._version = -1
        self._faces: list[dict] = []
        self._matrix = np.zeros((0, 128), dtype=np.float32)

    def snapshot(self) -> tuple[list[dict], np.ndarray]:
        with self._lock:
            version = self._db.read("SELECT version FROM collection_version WHERE id = 1")[0]["version"]
            if version != self._version:
                # Rows read after the version are never older than it: at
                # worst the next search reloads once more.
                rows = self._db.read("SELECT face, descriptor FROM collection ORDER BY rowid")
                self._faces = [json.loads(row["face"]) for row in rows]
                self._matrix = (
                    np.stack([np.frombuffer(row["descriptor"], dtype=np.float32) for row in rows])
                    if rows
                    else np.zeros((0, 128), dtype=np.float32)
                )
                self._version = version
            return self._faces, self._matrix


def _face_record(face: Face, analysis: Analysis, image_id: str, external_image_id: str) -> dict:
    return {
        "Face": {
            "FaceId": str(uuid.uuid4()),
            "BoundingBox": bounding_box(face, analysis),
            "ImageId": image_id,
            "ExternalImageId": external_image_id,
            "Confidence": face.quality.confidence,
            "IndexFacesModelVersion": MODEL_VERSION,
        },
        "FaceDetail": face_detail(face, analysis),
    }


def unindexed_face(face: Face, analysis: Analysis) -> dict:
    """A declined face as Rekognition's UnindexedFace."""
    return {"Reasons": list(face.reasons), "FaceDetail": face_detail(face, analysis)}


def face_detail(face: Face, analysis: Analysis) -> dict:
    """Rekognition's FaceDetail with its DEFAULT attributes that dlib's 5
    landmarks can give: box, confidence, pose and quality."""
    q = face.quality
    return {
        "BoundingBox": bounding_box(face, analysis),
        "Confidence": q.confidence,
        "Pose": {"Roll": q.roll, "Yaw": q.yaw, "Pitch": q.pitch},
        "Quality": {"Brightness": q.brightness, "Sharpness": q.sharpness},
    }


def bounding_box(face: Face, analysis: Analysis) -> dict:
    return {
        "Width": face.width / analysis.width,
        "Height": face.height / analysis.height,
        "Left": face.left / analysis.width,
        "Top": face.top / analysis.height,
    }
