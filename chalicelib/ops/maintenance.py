"""Keeping the three stores in agreement: the photo store, the image/face
records and the engine's collection. `check` lists every disagreement,
`repair` fixes them, `reindex` rebuilds collection and records from the
photos (after a model upgrade, a lost collection, or a move between
engines), resumably."""

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from chalicelib.core.indexing import index_photo
from chalicelib.core.ports import ListedPhoto, Page
from chalicelib.core.records import PENDING
from chalicelib.core.services import Services

PAGE = 500

RECORD_WITHOUT_FACE = "record_without_face"  # a face record the collection lacks
FACE_WITHOUT_RECORD = "face_without_record"  # a collection face no record names
FACE_WITHOUT_IMAGE = "face_record_without_image"  # a face record whose image record is gone
PHOTO_NOT_INDEXED = "photo_not_indexed"  # no image record, an older version's, or faces missing
PHOTO_PENDING = "photo_pending"  # recorded pending: its indexing has not finished (or was lost)
RECORD_WITHOUT_PHOTO = "record_without_photo"  # an image record whose photo is gone


@dataclass(frozen=True)
class Disagreement:
    kind: str
    key: str | None = None
    face_id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: " + ", ".join(f"{k}={v!r}" for k, v in asdict(self).items() if v and k != "kind")


def check(svc: Services) -> list[Disagreement]:
    photos = {photo.key: photo for photo in _all(svc.photos.list)}
    images = {image["key"]: image for image in _all(svc.records.list_images)}
    faces = {face["FaceId"]: face for face in _all(svc.records.list_faces)}
    collection = {face["FaceId"]: face for face in _all(svc.engine.list_faces)}
    found = [Disagreement(RECORD_WITHOUT_FACE, f["imageKey"], i) for i, f in faces.items() if i not in collection]
    found += [Disagreement(FACE_WITHOUT_RECORD, None, i) for i in collection if i not in faces]
    found += [
        Disagreement(FACE_WITHOUT_IMAGE, f["imageKey"], i) for i, f in faces.items() if f["imageKey"] not in images
    ]
    counted: dict[str, int] = {}
    for face in faces.values():
        counted[face["imageKey"]] = counted.get(face["imageKey"], 0) + 1
    for key, photo in photos.items():
        image = images.get(key)
        if image is not None and image["status"] == PENDING:
            found.append(Disagreement(PHOTO_PENDING, key))
        elif image is None or image["etag"] != photo.etag or image["faceCount"] != counted.get(key, 0):
            found.append(Disagreement(PHOTO_NOT_INDEXED, key))
    found += [Disagreement(RECORD_WITHOUT_PHOTO, key) for key in images if key not in photos]
    return found


def repair(svc: Services, disagreements: list[Disagreement]) -> None:
    """Fix each disagreement without losing anything the user did not
    delete: photos are indexed again; only records and collection faces
    whose photo is gone are removed."""
    stray = [d.face_id for d in disagreements if d.kind == FACE_WITHOUT_RECORD]
    svc.engine.delete_faces(stray)
    for d in disagreements:
        if d.kind == FACE_WITHOUT_IMAGE:
            svc.engine.delete_faces([d.face_id])
            svc.records.delete_face(d.face_id)
    gone = {d.key for d in disagreements if d.kind == RECORD_WITHOUT_PHOTO}
    for key in gone:
        svc.engine.delete_faces([face["FaceId"] for face in svc.records.faces_of(key)])
        svc.engine.delete_faces(svc.records.remove_image(key) or [])
    again = {d.key for d in disagreements if d.kind in (RECORD_WITHOUT_FACE, PHOTO_NOT_INDEXED, PHOTO_PENDING)} - gone
    for key in sorted(again):
        index_photo(svc, key, force=True)


def reindex(
    svc: Services,
    progress_file: Path,
    source: Services | None = None,
    on_photo: Callable[[int, int, str], None] = lambda done, total, key: None,
) -> int:
    """Index every stored photo again (or, with `source`, copy the source
    stage's photos in and index them), then drop collection faces that no
    record names. Progress is saved after each photo: run it again after an
    interruption and it carries on. Returns the number of photos indexed."""
    origin = source or svc
    state = json.loads(progress_file.read_text()) if progress_file.exists() else {"token": None, "done": []}
    total = sum(1 for _ in _all(origin.photos.list))
    done = len(state["done"]) + state.get("earlier", 0)
    while True:
        page = origin.photos.list(PAGE, state["token"])
        for photo in page.items:
            if photo.key in state["done"]:
                continue
            if source is None:
                index_photo(svc, photo.key, force=True)
            else:
                _copy(source, svc, photo)
            state["done"].append(photo.key)
            done += 1
            _save(progress_file, state)
            on_photo(done, total, photo.key)
        if page.next is None:
            break
        state = {"token": page.next, "done": [], "earlier": done}
        _save(progress_file, state)
    known = {face["FaceId"] for face in _all(svc.records.list_faces)}
    svc.engine.delete_faces([face["FaceId"] for face in _all(svc.engine.list_faces) if face["FaceId"] not in known])
    progress_file.unlink(missing_ok=True)
    return done


def _copy(source: Services, target: Services, listed: ListedPhoto) -> None:
    """The photo with its content type and metadata (a listing has neither:
    ask the source for them), then indexed as an upload would be."""
    existing = target.photos.head(listed.key)
    photo = source.photos.head(listed.key)
    if photo is None:
        return  # deleted from the source meanwhile
    if existing is None or existing.etag != photo.etag or existing.metadata != photo.metadata:
        data = source.photos.read(photo.key)
        existing = target.photos.put(photo.key, data, photo.content_type, photo.metadata, photo.original_content_type)
    index_photo(target, photo.key, existing.version)  # on AWS its S3 event will find it done


def _all(list_page: Callable[[int, str | None], Page]) -> Iterator:
    token = None
    while True:
        page = list_page(PAGE, token)
        yield from page.items
        if page.next is None:
            return
        token = page.next


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)
