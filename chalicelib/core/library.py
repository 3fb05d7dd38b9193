"""The archive as a library: reading, listing, downloading and deleting
images and faces, and describing the stage."""

from chalicelib import __version__
from chalicelib.core import exclusions, indexing, limits, naming, synthetic
from chalicelib.core.errors import NotFound
from chalicelib.core.services import Services


def get_image(svc: Services, key: str) -> dict:
    image = svc.records.get_image(key)
    if image is None:
        raise NotFound(f"No image named {key!r}: PUT /index/{{filename}} stores one.")
    return {"image": image, "faces": svc.records.faces_of(key)}


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


def get_photo(svc: Services, key: str) -> tuple[bytes | None, str | None, str]:
    """(bytes, None, content type) when the API serves the photo itself, or
    (None, a short-lived URL to fetch it from, content type)."""
    photo = svc.photos.head(key)
    if photo is None:
        image = svc.records.get_image(key)
        if image is not None and synthetic.is_synthetic(key, image["etag"]):
            raise NotFound(synthetic.no_photo_message(key))
        raise NotFound(f"No photo named {key!r}.")
    url = svc.photos.download_url(key)
    if url is not None:
        return None, url, photo.content_type
    return svc.photos.read(key), None, photo.content_type


def delete_face(svc: Services, face_id: str) -> dict:
    """The exclusion first (no indexing of the photo, a reindex or a
    restore included, brings the face back: core/exclusions.py), then the
    collection, record last: if a step fails, the record is still there and
    a retry of the same request finishes the job."""
    face = svc.records.get_face(face_id)
    if face is None:
        raise NotFound(f"No face {face_id!r}: already deleted?")
    exclusions.exclude(svc, face["imageKey"], [face], svc.clock())
    svc.engine.delete_faces([face_id])
    svc.records.delete_face(face_id)
    return {"deleted": {"FaceId": face_id, "imageKey": face["imageKey"]}}


def delete_image(svc: Services, key: str) -> dict:
    """Photo first (so nothing indexes it again), then what the ObjectRemoved
    event does (indexing.forget_deleted): while the bucket holds nothing, the
    faces leave the collection, then the records go, at the revision read.
    Faces first: a DeleteFaces that fails (throttled, a crash) leaves the
    record, which names them, to the request made again or to the event.
    A PUT of the key stored after the photo went stands: a new version
    keeps its record, and the same bytes put again, whose faces were the
    deleted version's, are indexed again."""
    image = svc.records.get_image(key)
    if image is None and svc.photos.head(key) is None:
        raise NotFound(f"No image named {key!r}: already deleted?")
    if image is not None:
        indexing.owe_a_visit(svc, image)
    svc.photos.delete(key)
    return {"deleted": {"key": key, "faces": indexing.forget_deleted(svc, key)}}


def describe(svc: Services) -> dict:
    engine = svc.engine.describe()
    return {
        "stage": svc.settings.stage,
        "engine": engine["engine"],
        "model": engine["model"],
        "images": svc.records.count_images(),
        "faces": engine["faces"],
        "limits": {**limits.as_dict(), "maxFacesPerImage": svc.settings.max_faces, **engine.get("limits", {})},
        "qualityFilter": svc.settings.quality_filter,
        "naming": naming.describe(engine["faces"], svc.engine.stranger_model()),
        "version": __version__,
    }
