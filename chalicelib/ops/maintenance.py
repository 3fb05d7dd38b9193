"""Keeping the three stores in agreement: the photo store, the image/face
records and the engine's collection. `check` lists every disagreement,
`repair` fixes them, `reindex` rebuilds collection and records from the
photos (after a model upgrade, a lost collection, or a move between
engines), resumably.

`check` reads each store a page at a time, in passes: the collection's
faces (is each named by a record?), the face records (is each in the
collection, and listed by its image?), the image records (is each photo
there, in that version, with its faces?), the photos (is each recorded?),
and the people. Each page is compared by lookups in the other stores, so
what it holds is one page, whatever the archive: the listings promise no
order (DynamoDB scans and Rekognition's ListFaces have none), so nothing is
merged in order. A photo indexed while a pass reads is never taken for a
disagreement: the records are read before the collection is asked (its
faces were there before its records), and `repair` reads again before it
acts.

On AWS the scheduled check (`sweep_for`) works through the passes in
segments: a run resumes where the last one stopped (its place kept in the
stage's shared state), checks and repairs page after page until its time
is spent, and saves its place; a full round over millions of faces takes
several runs (docs/deploy.md). Photos pending are the queue's and the
re-drive's: it leaves them be, and what it indexes takes its turns on the
stage's IndexFaces schedule; one photo's failure never stops it, a
throttle stops its indexing until the next run."""

import json
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from chalicelib.core import logs, people, synthetic
from chalicelib.core.errors import FaceprintError, Throttled
from chalicelib.core.indexing import index_photo, remove_photo
from chalicelib.core.keys import key_from_external_image_id
from chalicelib.core.ports import FaceKey, ImageState, ListedPhoto, Page
from chalicelib.core.records import PENDING, RUN_GRACE_SECONDS, attempt_may_run, iso_before
from chalicelib.core.services import Services

log = logging.getLogger("faceprint")

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


def check(svc: Services, threads: int = 1) -> list[Disagreement]:
    """Every disagreement between the three stores, and between the people
    records and the collection's Users: every pass to its end (see the
    module's docstring), then the work commits left owed. `threads`: the
    per-photo lookups made at once (on AWS, requests)."""
    found = [d for _, _, page in _pages(svc, Place(), threads) for d in page]
    reported = {d.key for d in found if d.key}
    return found + [Disagreement(WORK_OWED, key) for key in _owing(svc) if key not in reported]


@dataclass
class Place:
    """Where a round of the check stands: the pass, and its listing's token
    (None: the pass's first page)."""

    step: int = 0
    token: str | None = None
    round: int = 1
    started: float | None = None  # when this round began (seconds since the epoch)

    @property
    def name(self) -> str:
        return PASSES[self.step] if self.step < len(PASSES) else "done"


PASSES = ("collection", "face records", "image records", "photos", "people")


def _pages(svc: Services, place: Place, threads: int = 1) -> Iterator[tuple[int, str | None, list[Disagreement]]]:
    """Each page's disagreements from `place` on, with the place after it
    (its pass, and the next page's token)."""
    passes = (_collection_page, _face_records_page, _image_records_page, _photos_page, _people_page)
    step, token = place.step, place.token
    while step < len(passes):
        found, token = passes[step](svc, token, threads)
        if token is None:
            step += 1
        yield step, token, found


def _collection_page(svc: Services, token: str | None, threads: int) -> tuple[list[Disagreement], str | None]:
    """Collection faces with no face record (a run stopped between
    IndexFaces and its commit)."""
    page = svc.engine.list_face_ids(ID_PAGE, token)
    ids = list(page.items)
    named = svc.records.find_faces(ids)
    unnamed = [face_id for face_id in ids if face_id not in named]
    recorded = svc.records.existing_faces(unnamed) if unnamed else set()  # unlisted: the next pass reports them
    return [
        Disagreement(FACE_WITHOUT_RECORD, None, face_id) for face_id in unnamed if face_id not in recorded
    ], page.next


def _face_records_page(svc: Services, token: str | None, threads: int) -> tuple[list[Disagreement], str | None]:
    """Face records whose face the collection lacks, that their image does
    not list (a commit cut short) or whose image is gone, or that name
    someone who is no person."""
    page = svc.records.list_face_keys(ID_PAGE, token)
    faces: list[FaceKey] = list(page.items)
    found: list[Disagreement] = []
    listed = svc.records.find_faces([face.face_id for face in faces])
    in_collection = svc.engine.get_faces([face.face_id for face in faces if face.face_id in listed])
    images: dict[str, bool] = {}
    for face in faces:
        if face.face_id in listed:
            if face.face_id not in in_collection:
                found.append(Disagreement(RECORD_WITHOUT_FACE, face.image_key, face.face_id))
            continue
        if face.image_key not in images:
            images[face.image_key] = svc.records.get_image(face.image_key) is not None
        kind = FACE_NOT_LISTED if images[face.image_key] else FACE_WITHOUT_IMAGE
        found.append(Disagreement(kind, face.image_key, face.face_id))
    owners = {face.user_id for face in faces if face.user_id}
    people = svc.records.find_people(sorted(owners)) if owners and svc.people is not None else {}
    found += [
        Disagreement(FACE_OWNER, face_id=face.face_id, person_id=face.user_id)
        for face in faces
        if face.user_id and svc.people is not None and face.user_id not in people
    ]
    return found, page.next


def _image_records_page(svc: Services, token: str | None, threads: int) -> tuple[list[Disagreement], str | None]:
    """Image records whose photo is gone (an ObjectRemoved event lost), or
    not as recorded (another version, put again, faces missing), or
    pending."""
    page = svc.records.list_image_states(ID_PAGE, token)
    images: list[ImageState] = list(page.items)
    looked = _each(lambda image: (svc.photos.head(image.key), _face_count(svc, image)), images, threads)
    found = []
    for image, (photo, faces) in zip(images, looked, strict=True):
        if photo is None:
            if not synthetic.is_synthetic(image.key, image.etag):
                found.append(Disagreement(RECORD_WITHOUT_PHOTO, image.key))
            elif image.face_count != faces:
                found.append(Disagreement(SYNTHETIC_INCOMPLETE, image.key))
        elif image.status == PENDING:
            found.append(Disagreement(PHOTO_PENDING, image.key))
        elif image.etag != photo.etag or image.face_count != faces or _newer(photo.stored_at, image.uploaded_at):
            found.append(Disagreement(PHOTO_NOT_INDEXED, image.key))
    return found, page.next


def _photos_page(svc: Services, token: str | None, threads: int) -> tuple[list[Disagreement], str | None]:
    """Photos never recorded (their ObjectCreated event lost)."""
    page = svc.photos.list(ID_PAGE, token)
    photos: list[ListedPhoto] = list(page.items)
    recorded = svc.records.get_images([photo.key for photo in photos])
    return [Disagreement(PHOTO_NOT_INDEXED, photo.key) for photo in photos if photo.key not in recorded], page.next


def _people_page(svc: Services, token: str | None, threads: int) -> tuple[list[Disagreement], str | None]:
    return _check_people(svc), None


def _face_count(svc: Services, image: ImageState) -> int:
    """The faces the record of `image` lists that have their face record
    (what reads give)."""
    return len(svc.records.faces_of(image.key)) if image.face_count else 0


def _each(look: Callable, items: list, threads: int) -> list:
    """`look` at each item, `threads` at a time (on AWS: each a request)."""
    if threads <= 1 or len(items) <= 1:
        return [look(item) for item in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(look, items))


def _newer(stored_at: str | None, uploaded_at: str | None) -> bool:
    """Whether the bucket holds a version stored after the recorded one was
    uploaded (the same bytes put again, whose metadata is not on record:
    its event was lost)."""
    return bool(stored_at and uploaded_at and stored_at > uploaded_at)


def _owing(svc: Services) -> list[str]:
    """Keys of the final records that still owe work (pending ones are reported as such)."""
    owing = []
    for key in svc.records.list_pending(FAR_FUTURE, ID_PAGE):  # few: each is visited by the re-drive
        image = svc.records.get_image(key)
        if image is not None and image["status"] != PENDING and image.get("owed"):
            owing.append(key)
    return sorted(owing)


def _check_people(svc: Services) -> list[Disagreement]:
    """Every person is a User of the collection and every User a person, and
    both sides give each person the same faces (a face record naming
    someone who is no person: the face records' pass)."""
    if svc.people is None:
        return []
    found: list[Disagreement] = []
    users = set(svc.people.list_users())
    person_ids = {person["personId"] for person in _all(svc.records.list_people, ID_PAGE)}
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


def repair(svc: Services, disagreements: list[Disagreement], pending_to_queue: bool = False) -> dict:
    """Fix each disagreement without losing anything the user did not
    delete: photos are indexed again; only records and collection faces
    whose photo is gone are removed; people follow the records (a person is
    a person record) and faces' owners the collection. Each is looked at
    afresh first: what an indexing run under way may still finish (its
    attempt began less than RUN_GRACE_SECONDS ago) is left to it, and a
    photo is indexed again only if it still needs it. A synthetic image has
    no photo to index again: one that lost a face is removed (`make seed`
    adds more). On a stage with an indexing queue, photos pending are the
    queue's. Each is repaired on its own: one that fails is logged and left
    to the next check; after a throttle, indexing waits for the next one.
    Returns how many were repaired, failed and left."""
    moment = svc.clock()
    busy = _Busy(svc, moment)
    outcome = _Outcome()
    stray = [d.face_id for d in disagreements if d.kind == FACE_WITHOUT_RECORD]
    for start in range(0, len(stray), DELETE_BATCH):
        outcome.run(lambda chunk=stray[start : start + DELETE_BATCH]: _remove_strays(svc, chunk, busy))
    for d in disagreements:
        if d.kind in (FACE_WITHOUT_IMAGE, FACE_NOT_LISTED):
            outcome.run(lambda d=d: _remove_face_record(svc, d, busy))
    gone = {d.key for d in disagreements if d.kind in (RECORD_WITHOUT_PHOTO, SYNTHETIC_INCOMPLETE)}
    for key in sorted(gone):
        outcome.run(lambda key=key: _remove_gone(svc, key))
    kinds = (RECORD_WITHOUT_FACE, PHOTO_NOT_INDEXED, PHOTO_PENDING, WORK_OWED)
    for key in sorted({d.key for d in disagreements if d.kind in kinds} - gone):
        outcome.run(lambda key=key: _index_again(svc, key, busy, pending_to_queue), indexes=True)
    for d in disagreements:
        if d.kind in (USER_WITHOUT_PERSON, PERSON_WITHOUT_USER, FACE_OWNER):
            outcome.run(lambda d=d: _repair_people(svc, [d]))
    return {"repaired": outcome.repaired, "failed": outcome.failed, "left": outcome.left}


class _Outcome:
    """How the repairs of one `repair` went; after a throttle, the indexing
    ones wait for the next check."""

    def __init__(self) -> None:
        self.repaired = self.failed = self.left = 0
        self.throttled = False

    def run(self, fix: Callable[[], object], indexes: bool = False) -> None:
        if indexes and self.throttled:
            self.left += 1
            return
        try:
            fix()
        except Throttled:
            log.info("a repair was throttled: the rest of the indexing is left to the next check")
            self.throttled = True
            self.left += 1
        except Exception as e:  # one disagreement: logged (its kind only: a message may name a photo), left
            log.warning(
                "a repair failed (%s); the next check tries again",
                logs.error_kind(e),
                exc_info=not isinstance(e, FaceprintError),
            )
            self.failed += 1
        else:
            self.repaired += 1


def _remove_face_record(svc: Services, d: Disagreement, busy: "_Busy") -> None:
    if d.kind == FACE_WITHOUT_IMAGE and svc.records.get_image(d.key) is None:
        svc.engine.delete_faces([d.face_id])
        svc.records.delete_face(d.face_id)
    elif d.kind == FACE_NOT_LISTED and not busy(d.key, d.face_id) and not _listed(svc, d.key, d.face_id):
        svc.records.delete_face(d.face_id)
        svc.engine.delete_faces([d.face_id])


def _remove_gone(svc: Services, key: str) -> None:
    image = svc.records.get_image(key)
    if image is not None and synthetic.is_synthetic(key, image["etag"]):
        _forget(svc, key)
    else:
        remove_photo(svc, key)


def _index_again(svc: Services, key: str, busy: "_Busy", pending_to_queue: bool) -> None:
    """Index the photo again, if it still needs it once read afresh (a
    photo indexed while the check read is left as it is)."""
    image = svc.records.get_image(key)
    photo = svc.photos.head(key)
    if image is not None and synthetic.is_synthetic(key, image["etag"]) and photo is None:
        _forget(svc, key)
        return
    if busy(key):
        return
    pending_or_owed = image is not None and (image["status"] == PENDING or bool(image.get("owed")))
    if pending_or_owed and pending_to_queue:
        return  # the queue's workers and the re-drive index it
    if not pending_or_owed and _as_recorded(svc, image, photo):
        return
    index_photo(svc, key, force=not pending_or_owed)


def _as_recorded(svc: Services, image: dict | None, photo) -> bool:
    """Whether the record holds the stored version's outcome with all its
    faces, in the records and the collection: nothing to index again."""
    if image is None or photo is None or image["etag"] != photo.etag or image["status"] == PENDING:
        return False
    if _newer(photo.stored_at, image.get("uploadedAt")):
        return False
    ids = [face["FaceId"] for face in svc.records.faces_of(image["key"])]
    return len(ids) == image.get("faceCount", 0) and len(svc.engine.get_faces(ids)) == len(ids)


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
            people.follow_the_collection(svc, [d.face_id])


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
    """Every disagreement, repaired (`make check-consistency REPAIR=1`)."""
    found = check(svc)
    repair(svc, found)
    return found


CHECK = "check"  # where the scheduled check stands (the stage's SharedState)
CHECK_THREADS = 16  # lookups at once (a photo's HEAD, an image's faces)
CHECK_EVERY_HOURS = 1
# A round begins at most this long after the last one began (a large
# archive's round takes many runs; a small one's, one short run).
CHECK_ROUND_HOURS = 24
# A run starts no page this close to its timeout (a page of the image
# records' pass takes seconds; a listing's call up to one call's worst case).
CHECK_MARGIN_SECONDS = 150


def sweep_for(svc: Services, seconds: float, threads: int = CHECK_THREADS) -> dict:
    """The scheduled check on AWS (see the module's docstring): from where
    the last run stopped, each page checked and its disagreements repaired,
    until `seconds` are spent (a page is started only before then); then
    its place saved for the next run. When a round ends, the next begins
    CHECK_ROUND_HOURS after it began. Returns what it did."""
    state, clock = svc.pacing.state, svc.pacing.clock
    started = clock()
    saved = state.read(CHECK)
    place = Place(saved.get("step", 0), saved.get("token"), saved.get("round", 1), saved.get("started") or started)
    done = {"pages": 0, "found": 0, "repaired": 0, "failed": 0, "left": 0, "byKind": {}}
    rounds_done: list[dict] = []
    if saved.get("started") is None and (saved.get("notBefore") or 0) > started:
        return {**done, "pass": "waiting", "round": place.round, "roundsDone": rounds_done}  # the next round's day
    while clock() - started < seconds:
        try:
            step, token, page = next(_pages(svc, place, threads))
        except Throttled:  # a listing throttled: the next run carries on
            log.info("the check's listing was throttled: the next run carries on")
            break
        except Exception:  # a listing's token no longer valid (or any failure of one page): that pass again
            log.warning("the check could not read a page of %s: that pass starts again", place.name, exc_info=True)
            place.token = None
            state.update(CHECK, {"token": None})
            break
        outcome = repair(svc, page, pending_to_queue=svc.queue is not None)
        done["pages"] += 1
        done["found"] += len(page)
        for d in page:
            done["byKind"][d.kind] = done["byKind"].get(d.kind, 0) + 1
        for name in ("repaired", "failed", "left"):
            done[name] += outcome[name]
        place.step, place.token = step, token
        values = {"step": step, "token": token, "started": place.started}
        if step >= len(PASSES):
            rounds_done.append({"round": place.round, "hours": round((clock() - place.started) / 3600, 2)})
            next_round = place.started + CHECK_ROUND_HOURS * 3600
            place = Place(round=place.round + 1)
            values = {"step": 0, "token": None, "round": place.round, "started": None, "notBefore": next_round}
        state.update(CHECK, values, add={"found": len(page)})
        if rounds_done:
            break  # a round ended: the next begins a day after this one began
    return {**done, "pass": place.name, "round": place.round, "roundsDone": rounds_done}
