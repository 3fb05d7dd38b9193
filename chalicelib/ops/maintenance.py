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

from chalicelib.core import people, synthetic
from chalicelib.core.indexing import index_photo, remove_photo
from chalicelib.core.keys import key_from_external_image_id
from chalicelib.core.ports import ListedPhoto, Page
from chalicelib.core.records import PENDING, RUN_GRACE_SECONDS, attempt_may_run, iso_before
from chalicelib.core.services import Services

PAGE = 500
ID_PAGE = 10_000  # ids and keys per page of the id-only listings (adapters may give fewer)
DELETE_BATCH = 4096
FAR_FUTURE = "9999-12-31T00:00:00.000+00:00"  # every record the re-drive owes a visit

RECORD_WITHOUT_FACE = "record_without_face"  # a face record the collection lacks
FACE_WITHOUT_RECORD = "face_without_record"  # a collection face no record names
FACE_WITHOUT_IMAGE = "face_record_without_image"  # a face record whose image record is gone
FACE_NOT_LISTED = "face_record_not_listed"  # a face record its image does not list (a commit that stopped halfway)
PHOTO_NOT_INDEXED = "photo_not_indexed"  # no image record, an older version's, or faces missing
PHOTO_PENDING = "photo_pending"  # recorded pending: its indexing has not finished (or was lost)
WORK_OWED = "work_owed"  # what a commit left to do (faces to retire, an enrolment) is not done yet
RECORD_WITHOUT_PHOTO = "record_without_photo"  # an image record whose photo is gone
SYNTHETIC_INCOMPLETE = "synthetic_image_incomplete"  # a seeded image whose face records are not all there
PERSON_WITHOUT_USER = "person_without_user"  # a person the collection has no User for
USER_WITHOUT_PERSON = "user_without_person"  # a User of the collection that is no person (a create or delete cut short)
FACE_OWNER = "face_owner_disagrees"  # the records and the collection disagree on whose face it is


@dataclass(frozen=True)
class Disagreement:
    kind: str
    key: str | None = None
    face_id: str | None = None
    person_id: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}: " + ", ".join(f"{k}={v!r}" for k, v in asdict(self).items() if v and k != "kind")


def check(svc: Services) -> list[Disagreement]:
    """Every disagreement between the three stores, and between the people
    records and the collection's Users. Holds the collection's face ids, a
    face count per image key and the photos' etags (about 250 bytes per
    face in all), one page of each listing at a time."""
    found: list[Disagreement] = []
    # The collection's faces; each one a face record names is struck off.
    unclaimed = set(_all(svc.engine.list_face_ids, ID_PAGE))
    counted: dict[str, int] = {}  # image key -> face records naming it
    owned: dict[str, str] = {}  # face id -> the person its record names
    for face in _all(svc.records.list_face_keys, ID_PAGE):
        if face.user_id:
            owned[face.face_id] = face.user_id
        if face.face_id in unclaimed:
            unclaimed.discard(face.face_id)
        else:
            found.append(Disagreement(RECORD_WITHOUT_FACE, face.image_key, face.face_id))
        counted[face.image_key] = counted.get(face.image_key, 0) + 1
    found += [Disagreement(FACE_WITHOUT_RECORD, None, face_id) for face_id in sorted(unclaimed)]
    del unclaimed
    photos = {photo.key: (photo.etag, photo.stored_at) for photo in _all(svc.photos.list, ID_PAGE)}
    for image in _all(svc.records.list_image_states, ID_PAGE):
        faces = counted.pop(image.key, 0)
        etag, stored_at = photos.pop(image.key, (None, None))
        if faces != image.face_count:
            unlisted = _unlisted(svc, image.key)
            found += [Disagreement(FACE_NOT_LISTED, image.key, face_id) for face_id in unlisted]
            faces -= len(unlisted)
        if etag is None:
            if not synthetic.is_synthetic(image.key, image.etag):
                found.append(Disagreement(RECORD_WITHOUT_PHOTO, image.key))
            elif image.face_count != faces:
                found.append(Disagreement(SYNTHETIC_INCOMPLETE, image.key))
        elif image.status == PENDING:
            found.append(Disagreement(PHOTO_PENDING, image.key))
        elif image.etag != etag or image.face_count != faces or _newer(stored_at, image.uploaded_at):
            found.append(Disagreement(PHOTO_NOT_INDEXED, image.key))
    found += [Disagreement(PHOTO_NOT_INDEXED, key) for key in sorted(photos)]  # never recorded
    if counted:  # face records of images no longer recorded: find their ids again
        found += [
            Disagreement(FACE_WITHOUT_IMAGE, face.image_key, face.face_id)
            for face in _all(svc.records.list_face_keys, ID_PAGE)
            if face.image_key in counted
        ]
    reported = {d.key for d in found if d.key}
    found += [Disagreement(WORK_OWED, key) for key in _owing(svc) if key not in reported]
    return found + _check_people(svc, owned)


def _newer(stored_at: str | None, uploaded_at: str | None) -> bool:
    """Whether the bucket holds a version stored after the recorded one was
    uploaded (the same bytes put again, whose metadata is not on record:
    its event was lost)."""
    return bool(stored_at and uploaded_at and stored_at > uploaded_at)


def _unlisted(svc: Services, key: str) -> list[str]:
    """The face records naming `key` that its image record does not list."""
    listed = {face["FaceId"] for face in svc.records.faces_of(key)}
    return sorted(
        face.face_id
        for face in _all(svc.records.list_face_keys, ID_PAGE)
        if face.image_key == key and face.face_id not in listed
    )


def _owing(svc: Services) -> list[str]:
    """Keys of the final records that still owe work (pending ones are reported as such)."""
    owing = []
    for key in svc.records.list_pending(FAR_FUTURE, ID_PAGE):  # few: each is visited by the re-drive
        image = svc.records.get_image(key)
        if image is not None and image["status"] != PENDING and image.get("owed"):
            owing.append(key)
    return sorted(owing)


def _check_people(svc: Services, owned: dict[str, str]) -> list[Disagreement]:
    """Every person is a User of the collection and every User a person, both
    sides give each person the same faces, and no face record names someone
    who is no person (`owned`: face id -> the person its record names)."""
    if svc.people is None:
        return []
    found: list[Disagreement] = []
    users = set(svc.people.list_users())
    person_ids = {person["personId"] for person in _all(svc.records.list_people, ID_PAGE)}
    found += [
        Disagreement(FACE_OWNER, face_id=face_id, person_id=person_id)
        for face_id, person_id in sorted(owned.items())
        if person_id not in person_ids
    ]
    for person_id in sorted(person_ids):
        recorded = {face["FaceId"] for face in svc.records.faces_of_person(person_id)}
        if person_id not in users:
            found.append(Disagreement(PERSON_WITHOUT_USER, person_id=person_id))
            continue
        users.discard(person_id)
        in_collection = set(svc.people.faces_of_user(person_id))
        found += [
            Disagreement(FACE_OWNER, face_id=face_id, person_id=person_id)
            for face_id in sorted(recorded ^ in_collection)
        ]
    found += [Disagreement(USER_WITHOUT_PERSON, person_id=user_id) for user_id in sorted(users)]
    return found


def repair(svc: Services, disagreements: list[Disagreement]) -> None:
    """Fix each disagreement without losing anything the user did not
    delete: photos are indexed again; only records and collection faces
    whose photo is gone are removed; people follow the records (a person is
    a person record) and faces' owners the collection. Each is looked at
    afresh first: what an indexing run under way may still finish (its
    attempt began less than RUN_GRACE_SECONDS ago) is left to it. A
    synthetic image has no photo to index again: one that lost a face is
    removed (`make seed` adds more)."""
    moment = svc.clock()
    busy = _Busy(svc, moment)
    stray = [d.face_id for d in disagreements if d.kind == FACE_WITHOUT_RECORD]
    for start in range(0, len(stray), DELETE_BATCH):
        _remove_strays(svc, stray[start : start + DELETE_BATCH], busy)
    for d in disagreements:
        if d.kind == FACE_WITHOUT_IMAGE and svc.records.get_image(d.key) is None:
            svc.engine.delete_faces([d.face_id])
            svc.records.delete_face(d.face_id)
        elif d.kind == FACE_NOT_LISTED and not busy(d.key, d.face_id) and not _listed(svc, d.key, d.face_id):
            svc.records.delete_face(d.face_id)
            svc.engine.delete_faces([d.face_id])
    gone = {d.key for d in disagreements if d.kind in (RECORD_WITHOUT_PHOTO, SYNTHETIC_INCOMPLETE)}
    for key in sorted(gone):
        image = svc.records.get_image(key)
        if image is not None and synthetic.is_synthetic(key, image["etag"]):
            _forget(svc, key)
        else:
            remove_photo(svc, key)
    kinds = (RECORD_WITHOUT_FACE, PHOTO_NOT_INDEXED, PHOTO_PENDING, WORK_OWED)
    again = {d.key for d in disagreements if d.kind in kinds} - gone
    for key in sorted(again):
        image = svc.records.get_image(key)
        if image is not None and synthetic.is_synthetic(key, image["etag"]) and svc.photos.head(key) is None:
            _forget(svc, key)
        elif not busy(key):
            pending_or_owed = image is not None and (image["status"] == PENDING or image.get("owed"))
            index_photo(svc, key, force=not pending_or_owed)
    _repair_people(svc, disagreements)


def _remove_strays(svc: Services, face_ids: list[str], busy: "_Busy") -> None:
    """Collection faces no record names, unless a record names them by now
    or a run of their photo may still commit them."""
    found = svc.engine.get_faces(face_ids)
    idle = [face_id for face_id, face in found.items() if not busy(_key_of(face), face_id)]
    known = svc.records.find_faces(idle)  # read after: a run that committed meanwhile was busy above
    svc.engine.delete_faces([face_id for face_id in idle if face_id not in known])


def _repair_people(svc: Services, disagreements: list[Disagreement]) -> None:
    for d in disagreements:
        if d.kind in (USER_WITHOUT_PERSON, PERSON_WITHOUT_USER):
            people.sync_user(svc, d.person_id)
        elif d.kind == FACE_OWNER:
            _follow_the_collection(svc, d.face_id)


def _follow_the_collection(svc: Services, face_id: str) -> None:
    """The face record's person becomes the one the collection says, read
    again after the write until the collection stood still across it (a
    person's delete or "not this person" may change it meanwhile: the last
    write follows the collection as it stands)."""
    for _ in range(3):
        owner = svc.people.owners([face_id])
        if face_id not in owner:
            return  # not in the collection: record_without_face, indexed again above
        face = svc.records.get_face(face_id)
        if face is None:
            return
        if owner[face_id] is not None and svc.records.get_person(owner[face_id]) is not None:
            svc.records.associate_faces(owner[face_id], [face_id])
        elif face.get("UserId"):
            svc.records.disassociate_faces(face["UserId"], [face_id])
        if svc.people.owners([face_id]).get(face_id) == owner[face_id]:
            return


class _Busy:
    """Whether an indexing run of an image may be under way (an attempt
    begun less than RUN_GRACE_SECONDS ago), or a face is owed to it."""

    def __init__(self, svc: Services, moment: str) -> None:
        self._svc, self._since = svc, iso_before(moment, RUN_GRACE_SECONDS)

    def __call__(self, key: str | None, face_id: str | None = None) -> bool:
        if key is None:
            return False
        image = self._svc.records.get_image(key)
        if image is None:
            return False
        if any(attempt_may_run(mark, self._since) for mark in image.get("running", [])):
            return True
        return face_id is not None and face_id in (image.get("owed") or {}).get("retire", [])


def _listed(svc: Services, key: str, face_id: str) -> bool:
    return face_id in {face["FaceId"] for face in svc.records.faces_of(key)}


def _key_of(face: dict) -> str | None:
    external = face.get("ExternalImageId")
    return key_from_external_image_id(external) if external else None


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
    repair(svc, [Disagreement(FACE_WITHOUT_RECORD, None, face_id) for face_id in stray])
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


def sweep(svc: Services) -> list[Disagreement]:
    """The scheduled check: every disagreement, repaired."""
    found = check(svc)
    repair(svc, found)
    return found
