"""The embedded engine: dlib faces, descriptors in SQLite, search in-process.
It answers with Rekognition's output shapes, so the service cannot tell it
from engines/rekognition.py.

Similarity: Rekognition reports 0-100; dlib compares descriptors by
Euclidean distance, and 0.6 is dlib's standard "same person" cut-off. We map
distance d to similarity = 100 * (1 - d / 3), clamped to 0-100, so that the
default threshold 80 is exactly d = 0.6 (90 is d = 0.3, 70 is d = 0.9).

Strangers (STRANGERS, core/naming.py's model of how close a stranger's face
comes to a query): the distance between two different people's faces is
taken as normal, mean 0.83 and sd 0.08, which is similarity 72.3 +- 2.67.
Measured on the shared photos (`make bench-names` prints it): the 49 pairs
of different people's distinct photos are 0.835 +- 0.077 apart, the nearest
0.724; the model rounds both towards strangers coming closer. The far tail
that a million faces reach (1 in 10^8) is extrapolated: 49 pairs cannot
show it. Against the seeded strangers of chalicelib/embedded/synthetic.py it
overstates how close they come (docs/engine.md "Names at a million faces").
"""

import hashlib
import uuid
from pathlib import Path

import numpy as np

from chalicelib.core.errors import NotFound, PayloadTooLarge
from chalicelib.core.limits import MAX_FACES, MAX_IMAGE_BYTES, MAX_SEARCHED_FACES
from chalicelib.core.naming import StrangerModel
from chalicelib.core.ports import FaceEngine, Page, PhotoStore, PhotoVersion
from chalicelib.embedded.analysis import MODEL_VERSION, Analysis, Face
from chalicelib.embedded.collection import Collection
from chalicelib.embedded.database import Database
from chalicelib.embedded.workers import FaceAnalyzer

DISTANCE_AT_ZERO_SIMILARITY = 3.0
STRANGER_DISTANCE_MEAN, STRANGER_DISTANCE_SD = 0.83, 0.08
# One query's strangers spread less than all queries' (each query has its
# own level): about 1.8 in the bulk, and their best-of-N leads the second
# best as a normal tail of about 1.3 to 1.8 would (narrower in larger
# archives). 1.6 keeps the seeded strangers named in about half of the 0.01
# a search aimed at (docs/engine.md "Names at a million faces"); it sets the lead a
# name needs over the runner-up.
STRANGER_SPREAD = 1.6
STRANGERS = StrangerModel(
    round(100.0 * (1.0 - STRANGER_DISTANCE_MEAN / DISTANCE_AT_ZERO_SIMILARITY), 2),
    round(100.0 * STRANGER_DISTANCE_SD / DISTANCE_AT_ZERO_SIMILARITY, 2),
    "dlib, measured on the shared photos (distance 0.83 +- 0.08) and the seeded strangers (spread 1.6)",
    STRANGER_SPREAD,
)


def similarity(distance: np.ndarray) -> np.ndarray:
    return np.clip(100.0 * (1.0 - distance / DISTANCE_AT_ZERO_SIMILARITY), 0.0, 100.0)


def max_distance(threshold: float) -> float:
    """The distance at which similarity falls to `threshold`, a hair wider:
    the caller keeps what similarity() puts at or above the threshold."""
    return DISTANCE_AT_ZERO_SIMILARITY * (1.0 - threshold / 100.0) + 1e-9


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
        index_path: Path,
        quality_filter: str = "AUTO",
        max_faces: int = MAX_FACES,
        strangers: StrangerModel | None = None,
    ) -> None:
        self._db = db
        self._photos = photos
        self._analyzer = analyzer
        self._quality_filter = quality_filter
        self._max_faces = max_faces
        self._strangers = strangers or STRANGERS
        self._collection = Collection(db, index_path)

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        """Like Rekognition's IndexFaces on a photo in S3: a photo over its
        15 MB limit (stored by other means than an upload: a copy from
        another stage) is refused, unread."""
        data = self._photos.read(photo.key)
        if hashlib.md5(data).hexdigest() != photo.etag:
            raise NotFound(f"The photo {photo.key!r} was replaced while it was being indexed.")
        if len(data) > MAX_IMAGE_BYTES:
            raise PayloadTooLarge(f"The stored photo is {len(data)} bytes; the limit is {MAX_IMAGE_BYTES} (15 MB).")
        analysis = self._analyzer.analyze(data, quality_filter=self._quality_filter, max_faces=self._max_faces)
        image_id = str(uuid.uuid4())
        records = [_face_record(face, analysis, image_id, external_image_id) for face in analysis.faces]
        self._collection.add(
            [(record["Face"], face.descriptor) for record, face in zip(records, analysis.faces, strict=True)]
        )
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
        analysis = self._analyzer.analyze(data, searching=True)
        faces = sorted(analysis.faces, key=lambda f: f.width * f.height, reverse=True)[:MAX_SEARCHED_FACES]
        return [self._search(face, analysis, threshold, max_faces) for face in faces]

    def _search(self, face: Face, analysis: Analysis, threshold: float, max_faces: int) -> dict:
        found = self._collection.search(face.descriptor, max_distance(threshold), max_faces)
        # Today's rule, to the last bit: similarity at or above the threshold.
        matches = [{"Similarity": float(similarity(d)), "Face": f} for f, d in found if similarity(d) >= threshold]
        return {
            "SearchedFaceBoundingBox": bounding_box(face, analysis),
            "SearchedFaceConfidence": face.quality.confidence,
            "FaceMatches": matches,
            "FaceModelVersion": MODEL_VERSION,
        }

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        return self._collection.list_faces(limit, token)

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        return self._collection.list_face_ids(limit, token)

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        return self._collection.get_faces(face_ids)

    def delete_faces(self, face_ids: list[str]) -> None:
        self._collection.delete(face_ids)

    def descriptors(self, face_ids: list[str]) -> dict[str, np.ndarray]:
        """The descriptors of those of `face_ids` the collection holds (for
        embedded/people.py)."""
        return self._collection.descriptors(face_ids)

    def nearest(self, descriptor: np.ndarray, max_distance: float, limit: int) -> list[tuple[dict, float]]:
        """The collection's faces (Face records) within `max_distance` of
        `descriptor`, nearest first, at most `limit` (for embedded/people.py)."""
        return self._collection.search(descriptor, max_distance, limit)

    def describe(self) -> dict:
        return {"engine": "local", "model": MODEL_VERSION, "faces": self._collection.count()}

    def face_count(self) -> int:
        return self._collection.count()

    def stranger_model(self) -> StrangerModel:
        return self._strangers

    def close(self) -> None:
        """Save the collection's index, so the next start loads it."""
        self._collection.close()

    @property
    def collection(self) -> Collection:
        """The collection itself, for batch writes (`make seed`)."""
        return self._collection


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
