"""The use cases. Plain functions over the ports: they never know which
engine or store they were given."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib import __version__
from chalicelib.core import limits
from chalicelib.core.config import Settings
from chalicelib.core.errors import ImageRejected, NotFound
from chalicelib.core.images import prepare_search, prepare_upload
from chalicelib.core.keys import external_image_id, label_for
from chalicelib.core.ports import FaceEngine, PhotoStore, RecordStore, StoredPhoto

log = logging.getLogger("faceprint")

PENDING, INDEXED, NO_FACES, FAILED = "pending", "indexed", "no_faces", "failed"


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: FaceEngine
    records: RecordStore
    photos: PhotoStore


def upload_image(svc: Services, key: str, data: bytes, metadata: dict[str, str]) -> dict:
    """Validate and store a photo (converted to JPEG unless it is a JPEG or
    PNG). Storing it triggers indexing (an S3 event on AWS, a direct call
    offline), so the reply may already be indexed."""
    upload = prepare_upload(data)
    photo = StoredPhoto(key, "", len(upload.data), upload.content_type, metadata, upload.original_content_type)
    stored = svc.photos.put(photo, upload.data)
    svc.records.mark_pending(_image_record(stored, PENDING, face_count=0))
    return get_image(svc, key)


def index_stored_photo(svc: Services, key: str, force: bool = False) -> dict | None:
    """Index the stored photo `key`, replacing its earlier faces. Idempotent
    per photo version (etag): a repeated event changes nothing, unless
    `force` (a reindex) asks to index it again."""
    photo = svc.photos.head(key)
    if photo is None:
        log.warning("photo %r is gone before it could be indexed", key)
        return None
    current = svc.records.get_image(key)
    if not force and current and current["etag"] == photo.etag and current["status"] in (INDEXED, NO_FACES):
        if current["metadata"] != photo.metadata:
            svc.records.save_image({**current, "metadata": photo.metadata}, svc.records.faces_of(key))
        return current
    with svc.records.atomic():
        error = None
        try:
            result = svc.engine.index_faces(key, external_image_id(key))
        except ImageRejected as e:
            result, error = {"FaceRecords": []}, e.message
        faces = [{**record["Face"], "imageKey": key} for record in result["FaceRecords"]]
        status = FAILED if error else INDEXED if faces else NO_FACES
        image = _image_record(photo, status, face_count=len(faces), error=error)
        if faces:
            image["imageId"] = faces[0]["ImageId"]
        old_ids = [face["FaceId"] for face in svc.records.faces_of(key)]
        svc.records.save_image(image, faces)
        svc.engine.delete_faces(old_ids)
    return image


def get_image(svc: Services, key: str) -> dict:
    image = svc.records.get_image(key)
    if image is None:
        raise NotFound(f"No image named {key!r}: PUT /index/{{filename}} stores one.")
    return {"image": image, "faces": svc.records.faces_of(key)}


def search_image(svc: Services, data: bytes, threshold: float, max_matches: int) -> dict:
    """Who is the largest face in this photo?"""
    data = prepare_search(data)
    result = svc.engine.search_faces_by_image(data, threshold, max_matches)
    result, matches = _join_records(svc, [result])[0]
    return {"faces": result, "matchedFaces": [match["label"] for match in matches], "matches": matches}


def search_every_face(svc: Services, data: bytes, threshold: float, max_matches: int) -> dict:
    """Who is in this photo? Every face found, largest first, with its matches."""
    data = prepare_search(data)
    results = _join_records(svc, svc.engine.search_all_faces_by_image(data, threshold, max_matches))
    return {
        "faces": [result for result, _ in results],
        "searchedFaces": [
            {
                "BoundingBox": result["SearchedFaceBoundingBox"],
                "Confidence": result["SearchedFaceConfidence"],
                "matchedFaces": [match["label"] for match in matches],
                "matches": matches,
            }
            for result, matches in results
        ],
    }


def _join_records(svc: Services, results: list[dict]) -> list[tuple[dict, list[dict]]]:
    """Each search result with its matches' records, read in one batch.
    Matches whose records are gone (a face deleted meanwhile) are left out."""
    found = svc.records.find_faces(
        list({match["Face"]["FaceId"] for result in results for match in result["FaceMatches"]})
    )
    joined = []
    for result in results:
        kept = [match for match in result["FaceMatches"] if match["Face"]["FaceId"] in found]
        matches = []
        for match in kept:
            face, metadata = found[match["Face"]["FaceId"]]
            matches.append(
                {
                    "FaceId": face["FaceId"],
                    "Similarity": match["Similarity"],
                    "BoundingBox": face["BoundingBox"],
                    "imageKey": face["imageKey"],
                    "metadata": metadata,
                    "label": label_for(face["imageKey"], metadata),
                }
            )
        joined.append(({**result, "FaceMatches": kept}, matches))
    return joined


def list_images(svc: Services, limit: int, token: str | None) -> dict:
    page = svc.records.list_images(limit, token)
    return {"images": page.items, "next": page.next}


def list_faces(svc: Services, limit: int, token: str | None, image_key: str | None = None) -> dict:
    if image_key is None:
        page = svc.records.list_faces(limit, token)
        return {"faces": page.items, "next": page.next}
    return {"faces": get_image(svc, image_key)["faces"], "next": None}


def get_face(svc: Services, face_id: str) -> dict:
    face = svc.records.get_face(face_id)
    if face is None:
        raise NotFound(f"No face {face_id!r}.")
    return {"face": face}


def get_photo(svc: Services, key: str) -> tuple[bytes, str]:
    """The stored photo and its content type."""
    photo = svc.photos.head(key)
    if photo is None:
        raise NotFound(f"No photo named {key!r}.")
    return svc.photos.read(key), photo.content_type


def delete_face(svc: Services, face_id: str) -> dict:
    """Collection first, record last: if a step fails, the record is still
    there and a retry of the same request finishes the job."""
    face = svc.records.get_face(face_id)
    if face is None:
        raise NotFound(f"No face {face_id!r}: already deleted?")
    with svc.records.atomic():
        svc.engine.delete_faces([face_id])
        svc.records.delete_face(face_id)
    return {"deleted": {"FaceId": face_id, "imageKey": face["imageKey"]}}


def delete_image(svc: Services, key: str) -> dict:
    """Photo first, then its faces in the collection, then the records. If a
    step fails, a retry finishes it; and what is left behind is never a photo
    that a consistency repair would index again."""
    image = svc.records.get_image(key)
    if image is None and svc.photos.head(key) is None:
        raise NotFound(f"No image named {key!r}: already deleted?")
    svc.photos.delete(key)
    face_ids = [face["FaceId"] for face in svc.records.faces_of(key)]
    with svc.records.atomic():
        svc.engine.delete_faces(face_ids)
        svc.records.delete_image(key)
    return {"deleted": {"key": key, "faces": len(face_ids)}}


def describe(svc: Services) -> dict:
    engine = svc.engine.describe()
    return {
        "stage": svc.settings.stage,
        "engine": engine["engine"],
        "model": engine["model"],
        "images": svc.records.count_images(),
        "faces": engine["faces"],
        "limits": {**limits.as_dict(), **engine.get("limits", {})},
        "version": __version__,
    }


def _image_record(photo: StoredPhoto, status: str, face_count: int, error: str | None = None) -> dict:
    record = {
        "key": photo.key,
        "status": status,
        "metadata": photo.metadata,
        "contentType": photo.content_type,
        "size": photo.size,
        "etag": photo.etag,
        "faceCount": face_count,
        "updatedAt": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    if photo.original_content_type and photo.original_content_type != photo.content_type:
        record["originalContentType"] = photo.original_content_type
    if error:
        record["error"] = error
    return record
