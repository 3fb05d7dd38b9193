"""Keeping the three stores in agreement: the photo store, the image/face
records and the engine's collection. `check` lists every disagreement,
`repair` fixes them, `reindex` rebuilds collection and records from the
photos (after a model upgrade, a lost collection, or a move between
engines), resumably.

At a million faces the records do not fit in memory: `check` and
`reindex` read the id-only listings (RecordStore.list_image_states and
list_face_keys, FaceEngine.list_face_ids), a page at a time, and hold sets
of ids and counts, never records. The listings promise no order (DynamoDB
scans and Rekognition's ListFaces have none), so each side is matched by
id, not merged in order."""

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from chalicelib.core import synthetic
from chalicelib.core.indexing import index_photo
from chalicelib.core.ports import ListedPhoto, Page
from chalicelib.core.records import PENDING
from chalicelib.core.services import Services

PAGE = 500
ID_PAGE = 10_000  # ids and keys per page of the id-only listings (adapters may give fewer)
DELETE_BATCH = 4096

RECORD_WITHOUT_FACE = "record_without_face"  # a face record the collection lacks
FACE_WITHOUT_RECORD = "face_without_record"  # a collection face no record names
FACE_WITHOUT_IMAGE = "face_record_without_image"  # a face record whose image record is gone
PHOTO_NOT_INDEXED = "photo_not_indexed"  # no image record, an older version's, or faces missing
PHOTO_PENDING = "photo_pending"  # recorded pending: its indexing has not finished (or was lost)
RECORD_WITHOUT_PHOTO = "record_without_photo"  # an image record whose photo is gone
SYNTHETIC_INCOMPLETE = "synthetic_image_incomplete"  # a seeded image whose face records are not all there


@dataclass(frozen=True)
class Disagreement:
    kind: str
    key: str | None = None
    face_id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: " + ", ".join(f"{k}={v!r}" for k, v in asdict(self).items() if v and k != "kind")


def check(svc: Services) -> list[Disagreement]:
    """Every disagreement between the three stores. Holds the collection's
    face ids, a face count per image key and the photos' etags (about 250
    bytes per face in all), one page of each listing at a time."""
    found: list[Disagreement] = []
    # The collection's faces; each one a face record names is struck off.
    unclaimed = set(_all(svc.engine.list_face_ids, ID_PAGE))
    counted: dict[str, int] = {}  # image key -> face records naming it
    for face in _all(svc.records.list_face_keys, ID_PAGE):
        if face.face_id in unclaimed:
            unclaimed.discard(face.face_id)
        else:
            found.append(Disagreement(RECORD_WITHOUT_FACE, face.image_key, face.face_id))
        counted[face.image_key] = counted.get(face.image_key, 0) + 1
    found += [Disagreement(FACE_WITHOUT_RECORD, None, face_id) for face_id in sorted(unclaimed)]
    del unclaimed
    photos = {photo.key: photo.etag for photo in _all(svc.photos.list, ID_PAGE)}
    for image in _all(svc.records.list_image_states, ID_PAGE):
        faces = counted.pop(image.key, 0)
        etag = photos.pop(image.key, None)
        if etag is None:
            if not synthetic.is_synthetic(image.key, image.etag):
                found.append(Disagreement(RECORD_WITHOUT_PHOTO, image.key))
            elif image.face_count != faces:
                found.append(Disagreement(SYNTHETIC_INCOMPLETE, image.key))
        elif image.status == PENDING:
            found.append(Disagreement(PHOTO_PENDING, image.key))
        elif image.etag != etag or image.face_count != faces:
            found.append(Disagreement(PHOTO_NOT_INDEXED, image.key))
    found += [Disagreement(PHOTO_NOT_INDEXED, key) for key in sorted(photos)]  # never recorded
    if counted:  # face records of images no longer recorded: find their ids again
        found += [
            Disagreement(FACE_WITHOUT_IMAGE, face.image_key, face.face_id)
            for face in _all(svc.records.list_face_keys, ID_PAGE)
            if face.image_key in counted
        ]
    return found


def repair(svc: Services, disagreements: list[Disagreement]) -> None:
    """Fix each disagreement without losing anything the user did not
    delete: photos are indexed again; only records and collection faces
    whose photo is gone are removed. A synthetic image has no photo to
    index again: one that lost a face is removed (`make seed` adds more)."""
    stray = [d.face_id for d in disagreements if d.kind == FACE_WITHOUT_RECORD]
    for start in range(0, len(stray), DELETE_BATCH):
        svc.engine.delete_faces(stray[start : start + DELETE_BATCH])
    for d in disagreements:
        if d.kind == FACE_WITHOUT_IMAGE:
            svc.engine.delete_faces([d.face_id])
            svc.records.delete_face(d.face_id)
    gone = {d.key for d in disagreements if d.kind in (RECORD_WITHOUT_PHOTO, SYNTHETIC_INCOMPLETE)}
    for key in gone:
        _forget(svc, key)
    again = {d.key for d in disagreements if d.kind in (RECORD_WITHOUT_FACE, PHOTO_NOT_INDEXED, PHOTO_PENDING)} - gone
    for key in sorted(again):
        image = svc.records.get_image(key)
        if image is not None and synthetic.is_synthetic(key, image["etag"]) and svc.photos.head(key) is None:
            _forget(svc, key)
        else:
            index_photo(svc, key, force=True)


def _forget(svc: Services, key: str) -> None:
    """Remove an image's records and its faces from the collection."""
    svc.engine.delete_faces([face["FaceId"] for face in svc.records.faces_of(key)])
    svc.engine.delete_faces(svc.records.remove_image(key) or [])


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
    total = sum(1 for _ in _all(origin.photos.list, ID_PAGE))
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
    known = {face.face_id for face in _all(svc.records.list_face_keys, ID_PAGE)}
    stray = [face_id for face_id in _all(svc.engine.list_face_ids, ID_PAGE) if face_id not in known]
    del known
    for start in range(0, len(stray), DELETE_BATCH):
        svc.engine.delete_faces(stray[start : start + DELETE_BATCH])
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


def _all(list_page: Callable[[int, str | None], Page], page_size: int = PAGE) -> Iterator:
    token = None
    while True:
        page = list_page(page_size, token)
        yield from page.items
        if page.next is None:
            return
        token = page.next


def _save(path: Path, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, path)
