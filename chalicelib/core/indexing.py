"""Indexing, the same protocol in both wirings.

An upload validates the photo, stores it, records it `pending` and hands
that version to the indexer: offline the indexer runs right after the store
returns; on AWS the bucket's ObjectCreated event is the trigger. PutObject's
reply orders its version by nothing (no sequencer): the upload writes only
while the bucket still holds it.

An indexing run works on one version of a photo (the event's etag, version
id and sequencer) and stays right under S3's delivery rules (events come at
least once, in any order, possibly at the same time) and under crashes at
any step. Every decision is taken on a fresh read of the image record and
then of the bucket, and every write is a compare-and-set on the record's
revision: when one fails, the run reads both again and decides again. The
bucket orders the versions: the one it holds now is the one to index.

- The photo is gone from the bucket: its records and faces go too (a
  delete that raced an upload, a photo deleted from the bucket by hand).
- The bucket holds another version: nothing to do, that version is indexed
  by its own event (or, when an older version became current again, by the
  ObjectRemoved event that is all S3 sends then: remove_photo).
- These bytes are indexed already (a repeated event, the same bytes put
  again): the faces stay; the record takes the newest upload's metadata.
- Otherwise the run claims an attempt on the record (counted before it
  starts, so a crash counts too), indexes the version (IndexFaces reads
  that very version) and commits the faces. A run that loses (a duplicate
  finished first, a newer version came, the photo went) deletes the faces
  it added. A throttle of any service is back-pressure: the attempt is
  handed back. After INDEX_ATTEMPTS attempts the version ends `failed` with
  the reason, unless another attempt at it may still commit.

What a commit leaves to do (the replaced faces leave the collection, their
people carried over to the faces that stand on them; enrolment by upload)
is written on the record with the commit (`owed`), done right after, and
struck off once done: a crash in between leaves it owed, and the next run or
the re-drive finishes it.

Whatever the interleaving, each stored photo's faces end up exactly once in
the collection and in the records, labelled from its current version.
"""

import logging
import time
from dataclasses import replace

from chalicelib.core import exclusions, logs, people, synthetic
from chalicelib.core.errors import (
    COLLECTION_FULL,
    CollectionFull,
    FaceprintError,
    ImageRejected,
    NotFound,
    ServiceUnavailable,
    Throttled,
)
from chalicelib.core.images import prepare_upload
from chalicelib.core.keys import external_image_id
from chalicelib.core.ports import PhotoVersion, StoredPhoto
from chalicelib.core.records import (
    FAILED,
    INDEXED,
    NO_FACES,
    PENDING,
    RUN_GRACE_SECONDS,
    attempt_ended,
    attempt_mark,
    attempt_may_run,
    image_record,
    is_final_for,
    iso_after,
    iso_before,
    same_version,
)
from chalicelib.core.services import Services

log = logging.getLogger("faceprint")

# Attempts at one version before it ends `failed`, for callers that do not
# bound them themselves (on AWS the queue does: QUEUE_ATTEMPTS below);
# offline, the upload's own run and one more.
INDEX_ATTEMPTS = 5
UPLOAD_ATTEMPTS = 2
# Compare-and-set rounds before giving up (only under heavy contention).
WRITE_ROUNDS = 8
# The scheduled re-drive takes a photo left pending this long after its
# upload or its last failed attempt (an attempt under way: RUN_GRACE_SECONDS).
REDRIVE_AFTER_SECONDS = 300
REDRIVE_BATCH = 50
# A face of the new version stands on a face of the old one when their boxes
# overlap by more than this (intersection over union): it takes its person.
CARRY_OVER_OVERLAP = 0.5
# Runs from the indexing queue (core/index_queue.py): the queue bounds the
# tries of an event by its receives, so the record's attempts never end a
# photo `failed` by themselves; a photo re-driven this many times (its event
# lost, or its message dead-lettered by crashes) ends `failed`.
QUEUE_ATTEMPTS = 10**9
MAX_REDRIVES = 3
# Records the re-drive looks at beyond those due, for attempts whose process is gone.
REDRIVE_LOOKAHEAD = 200
_AGAIN = object()  # a compare-and-set lost: read again and decide again
_DEFERRED = object()  # no verdict: another attempt at the version may still commit


def upload_image(svc: Services, key: str, data: bytes, metadata: dict[str, str]) -> dict:
    """Validate and store a photo (HEIC, WebP and AVIF converted to JPEG),
    record it pending, and hand it to the indexer (offline: now; on AWS:
    the S3 event). The reply is the record as it stands: `indexed`
    offline, usually `pending` on AWS."""
    if people.PERSON_METADATA in metadata:
        people.validate_person_id(metadata[people.PERSON_METADATA])
    if svc.pacing is not None and svc.pacing.collection_full():  # nothing stored for a collection that is full
        raise CollectionFull(COLLECTION_FULL.format(limit=f"{svc.settings.collection_faces:,} faces"))
    upload = prepare_upload(data, keep_location=svc.settings.keep_location)
    stored = svc.photos.put(key, upload.data, upload.content_type, metadata, upload.original_content_type)
    image = record_stored(svc, stored)
    faces = svc.records.faces_of(key) if image["status"] != PENDING else []
    return {"image": image, "faces": faces}


def record_stored(svc: Services, stored: StoredPhoto) -> dict:
    """A version just stored (an upload, or an erasure that replaced the
    photo's metadata): recorded, and offline indexed, as an upload is. The
    same bytes keep their faces and take the version's metadata."""
    image = _record_pending(svc, stored)
    if svc.index_on_upload:
        image = _index_now(svc, stored.version) or image
    return image


def index_photo(
    svc: Services,
    key: str,
    version: PhotoVersion | None = None,
    force: bool = False,
    attempts: int = INDEX_ATTEMPTS,
) -> dict | None:
    """Index `version` of the stored photo `key` (by default whatever it
    holds now; `force` indexes it again even if already indexed, as a
    reindex does). Returns the image record as this run leaves it, or None
    when the photo is gone. A failure that may pass is recorded and raised,
    for the caller to retry, until the version has had `attempts` runs;
    then it ends `failed` with the reason. Throttled is raised with the
    attempt handed back."""
    started = time.perf_counter()
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(key)
        photo = svc.photos.head(key)
        if photo is None:
            outcome = _forget(svc, key, current, started)
        elif version is not None and _superseded(photo, version):
            outcome = _stale(key, current, started)
        else:
            if version is not None:
                photo = replace(photo, sequencer=version.sequencer or photo.sequencer)
            outcome = _index_version(svc, photo, current, force, attempts, started)
        if outcome is not _AGAIN:
            return outcome
    raise ServiceUnavailable(f"Image {key!r} kept changing while it was being indexed; retry.")


def remove_photo(svc: Services, key: str) -> dict | None:
    """A version left the bucket (ObjectRemoved: a delete through the API or
    by any other means), and the records follow what the bucket holds now.
    Nothing: its records and faces go (with bucket versioning a plain
    delete leaves a delete marker, which is no version: the photo is gone
    as well). Another version than the one recorded: it is indexed, for no
    other event says so when an older version becomes current again (the
    current version deleted by its id, a delete marker removed)."""
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(key)
        photo = svc.photos.head(key)
        if photo is not None:
            if current is not None and same_version(current, photo):
                return current  # what the bucket holds is what is recorded (or being indexed)
            return index_photo(svc, key)
        outcome = _forget(svc, key, current, time.perf_counter())
        if outcome is not _AGAIN:
            return outcome
    raise ServiceUnavailable(f"Image {key!r} kept changing while it was being removed; retry.")


def owe_a_visit(svc: Services, image: dict) -> None:
    """Before a DELETE removes the photo: the record owes the re-drive a
    visit REDRIVE_AFTER_SECONDS from now, so that if the delete stops
    short of removing it (DeleteFaces throttled, a crash, a timeout) and
    its ObjectRemoved event is lost too, the re-drive finds the photo gone
    and removes it, without waiting for the check to read the archive.
    One write; a record changed meanwhile is left as it is (its event
    remains). The visit's run clears a debt with nothing left in it."""
    owed = image.get("owed") or {}
    if owed.get("since") or synthetic.is_synthetic(image["key"], image["etag"]):
        return  # already due; a synthetic image stays (it has no photo by design)
    due = {**owed, "since": iso_after(svc.clock(), REDRIVE_AFTER_SECONDS)}
    svc.records.put_image({**image, "owed": due}, image["revision"])


def forget_deleted(svc: Services, key: str) -> int:
    """After a DELETE of the photo: while the bucket holds nothing, its
    faces and records go (_forget: faces first). A PUT stored since stands
    with its own record. Returns how many faces went."""
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(key)
        if current is None or svc.photos.head(key) is not None:
            return 0  # nothing recorded, or a later PUT stands with its own
        faces = len(svc.records.faces_of(key))
        if _forget(svc, key, current, time.perf_counter()) is not _AGAIN:
            return faces
    raise ServiceUnavailable(f"Image {key!r} kept changing while it was being deleted; retry.")


def redrive_pending(svc: Services, moment: str | None = None) -> dict:
    """Visit the records the re-drive owes a visit (records.redrive_due),
    the longest due first: photos left pending (an S3 event lost after
    Lambda's retries, a failed attempt, a crashed one once it is surely
    over), work a crash left after a commit, and records whose photo is
    gone. Each visit moves the record out of the way (done, failed, gone,
    or due again later), so a batch always makes progress on the oldest."""
    moment = moment or svc.clock()
    keys = svc.records.list_pending(moment, REDRIVE_BATCH)
    keys += _abandoned(svc, moment, set(keys))[: REDRIVE_BATCH - len(keys)]
    done = failed = gone = 0
    for key in keys:
        try:
            image = index_photo(svc, key)
        except Exception:  # recorded on the photo and logged by index_photo: go on with the others
            failed += 1
            continue
        if image is None:
            gone += 1
        else:
            done += 1
    return {"pending": len(keys), "indexed": done, "failed": failed, "removed": gone}


def _abandoned(svc: Services, moment: str, due: set[str]) -> list[str]:
    """Photos not due yet whose attempts under way are all of processes of
    this machine that are gone (a server killed mid-run and started
    again): nothing is left to wait for. Their attempts would be due once
    RUN_GRACE_SECONDS after they began: those are the records looked at."""
    since = iso_before(moment, RUN_GRACE_SECONDS)
    soon = svc.records.list_pending(iso_after(moment, RUN_GRACE_SECONDS + 1), REDRIVE_LOOKAHEAD)
    abandoned = []
    for key in soon:
        if key in due:
            continue
        image = svc.records.get_image(key)
        marks = (image or {}).get("running") or []
        if marks and not any(attempt_may_run(mark, since) for mark in marks):
            abandoned.append(key)
    return abandoned


def _index_version(
    svc: Services, photo: StoredPhoto, current: dict | None, force: bool, attempts: int, started: float
) -> object:
    key = photo.key
    if is_final_for(current, photo) and not force:
        refreshed = _refresh(svc, current, photo)
        return _AGAIN if refreshed is None else _finish(svc, refreshed)
    before = current.get("attempts", 0) if same_version(current, photo) and current["status"] == PENDING else 0
    if before >= attempts:  # counted as they began: the last one crashed or failed
        reason = current.get("error") or "the run stopped before it finished (a crash or a timeout)"
        verdict = f"Indexing failed {before} times; the last time: {reason}"
        outcome = _give_up(svc, photo, current, None, verdict, started)
        return _stale(key, current, started) if outcome is _DEFERRED else outcome
    moment = svc.clock()
    token = attempt_mark(moment)
    try:
        running = _running(current, moment, add=token)
        claim = _pending_record(svc, photo, current, attempts=before + 1, running=running, retry_in=RUN_GRACE_SECONDS)
        claimed = svc.records.put_image(claim, _revision(current))
        if claimed is None:
            return _AGAIN
        return _attempt(svc, photo, claimed, token, attempts, started)
    finally:
        attempt_ended(token)  # whatever its mark on the record says: this process knows it is over


# What the indexing queue's workers call (core/index_queue.py).


def index_queued_photo(svc: Services, key: str, version: PhotoVersion | None = None) -> dict | None:
    """An indexing run for an event the queue delivered. The queue bounds
    its tries (record_failure on its last receive), so the record's
    attempts only count. A photo that ended `failed` for a reason that may
    pass (its `attempts` say so) is indexed again when an event for it
    comes back: that is how messages moved back from the dead-letter queue
    retry their photos."""
    current = svc.records.get_image(key)
    again = (
        current is not None
        and current["status"] == FAILED
        and bool(current.get("attempts"))
        and (version is None or current["etag"] == version.etag)
    )
    return index_photo(svc, key, version, force=again, attempts=QUEUE_ATTEMPTS)


def record_failure(svc: Services, key: str, version: PhotoVersion | None, reason: str) -> dict | None:
    """End `version` of the photo (None: whatever the bucket holds) `failed`
    with `reason`: the queue gives up on its event. Nothing changes when the
    bucket holds another version now, a run indexed these bytes meanwhile,
    or another attempt at the version may still commit (a copy of the
    event runs: it concludes; if it crashed, the re-drive visits the photo
    once its attempt is surely over). The faces of an earlier version go, as
    with any version that failed (those of these very bytes stay: see
    _give_up). Returns the record as it stands."""
    started = time.perf_counter()
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(key)
        photo = svc.photos.head(key)
        if photo is None or (version is not None and _superseded(photo, version)):
            return current
        if version is not None:
            photo = replace(photo, sequencer=version.sequencer or photo.sequencer)
        if is_final_for(current, photo):
            return current
        if current is None or not same_version(current, photo):
            current = svc.records.put_image(_pending_record(svc, photo, current), _revision(current))
            if current is None:
                continue
        outcome = _give_up(svc, photo, current, None, reason, started)
        if outcome is _DEFERRED:
            return current
        if outcome is not _AGAIN:
            return outcome
    raise ServiceUnavailable(f"Image {key!r} kept changing while its failure was being recorded; retry.")


def note_redrive(svc: Services, key: str) -> bool:
    """A photo the re-drive sent again (its event was lost, or dead-lettered
    without a recorded failure): counted on its pending record. False, and
    the photo recorded `failed`, once it has been re-driven MAX_REDRIVES
    times; True when it should be indexed (or was meanwhile)."""
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(key)
        if current is None or current["status"] != PENDING:
            return True
        count = current.get("redrives", 0)
        if count >= MAX_REDRIVES:
            record_failure(svc, key, None, f"Its indexing was lost {count} times (the log says why).")
            return False
        if svc.records.put_image({**current, "redrives": count + 1}, current["revision"]) is not None:
            return True
    raise ServiceUnavailable(f"Image {key!r} kept changing while its re-drive was being counted; retry.")


def _index_now(svc: Services, version: PhotoVersion) -> dict | None:
    """Offline: the indexer runs right after the store returns, retried once
    when it fails in a way that may pass."""
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            return index_photo(svc, version.key, version, attempts=UPLOAD_ATTEMPTS)
        except Exception:  # recorded on the image by index_photo; the last attempt ends it `failed`
            if attempt == UPLOAD_ATTEMPTS:
                raise
    return None


def _superseded(photo: StoredPhoto, version: PhotoVersion) -> bool:
    """The bucket holds another version than the one this run was given."""
    if photo.version_id and version.version_id:
        return photo.version_id != version.version_id
    if photo.sequencer and version.sequencer:
        return photo.sequencer != version.sequencer
    return photo.etag != version.etag


def _stale(key: str, current: dict | None, started: float) -> dict | None:
    logs.log_indexed(key, current, started, outcome="stale")
    return current


def _forget(svc: Services, key: str, current: dict | None, started: float) -> object:
    """The photo is gone: its faces leave the collection, then its record
    goes, unless it changed since it was read (then decide again). Faces
    first: a DeleteFaces that fails (throttled, a crash) leaves the record,
    which names them, to the retry (the event's next receive, the re-drive,
    the check). A synthetic image has no photo by design and stays."""
    if current is None or synthetic.is_synthetic(key, current["etag"]):
        logs.log_indexed(key, current, started, outcome="gone")
        return current
    owed = [face["FaceId"] for face in svc.records.faces_of(key)] + (current.get("owed") or {}).get("retire", [])
    svc.engine.delete_faces(list(dict.fromkeys(owed)))
    removed = svc.records.remove_image(key, current["revision"])
    if removed is None:
        _index_again_if_its_faces_went(svc, key, set(owed))
        return _AGAIN
    svc.engine.delete_faces([face_id for face_id in dict.fromkeys(removed) if face_id not in set(owed)])
    log.info("removed the records of a photo no longer in the store")
    logs.log_indexed(key, None, started, outcome="removed")
    return None


def _index_again_if_its_faces_went(svc: Services, key: str, gone: set[str]) -> None:
    """The record changed while the faces of the photo that went were being
    deleted: the same bytes put again meanwhile keep the faces on record
    (_refresh), and those faces just left the collection. That version is
    indexed again (new FaceIds), so no record names a face that is gone:
    here where this process indexes uploads, else by the re-drive at once
    (on AWS the API's role may not call IndexFaces). Whoever writes the
    record meanwhile keeps the faces it names (a refresh, a run finishing
    the same bytes), so the pending record is written until it lands or
    the record names none of them."""
    for _ in range(WRITE_ROUNDS):
        photo = svc.photos.head(key)
        current = svc.records.get_image(key)
        if not gone or photo is None or current is None:
            return
        if not gone & {face["FaceId"] for face in svc.records.faces_of(key)}:
            return
        if svc.index_on_upload:
            index_photo(svc, key, force=True)
            return
        if svc.records.put_image(_pending_record(svc, photo, current, retry_in=0), current["revision"]) is not None:
            return


def _record_pending(svc: Services, photo: StoredPhoto) -> dict:
    """Record an upload pending, unless this very content is already
    indexed (the same bytes again, or an S3 event that beat the reply).
    Only while the bucket still holds this version, read after the record:
    PutObject's reply orders it by nothing (no sequencer), and another put
    of the key may have been stored, recorded and indexed since; then that
    one stands. A delete that came meanwhile stands too: the record goes."""
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(photo.key)
        head = svc.photos.head(photo.key)
        if head is None:  # a delete overtook the upload: it stands
            if _forget(svc, photo.key, current, time.perf_counter()) is _AGAIN:
                continue
            return _pending_record(svc, photo, None)  # what the reply says of this upload
        if _superseded(head, photo.version):  # a later put of the key stands, with its own record
            return current or _pending_record(svc, photo, None)
        if is_final_for(current, photo):
            written = _refresh(svc, current, photo)
        else:
            written = svc.records.put_image(_pending_record(svc, photo, current), _revision(current))
        if written is not None:
            if svc.photos.head(photo.key) is None:
                _forget(svc, photo.key, written, time.perf_counter())
            return written
    raise ServiceUnavailable(f"Image {photo.key!r} kept changing while it was being recorded; retry.")


def _pending_record(
    svc: Services, photo: StoredPhoto, current: dict | None, retry_in: float = REDRIVE_AFTER_SECONDS, **extra
) -> dict:
    """The record of this version waiting to be indexed, for the re-drive
    `retry_in` seconds from now. The faces on record stay until the new
    version replaces them, and so do what is owed for them and the newest
    sequencer seen (the order of versions); a record of the same version
    keeps its attempts, error, enrolment and times."""
    moment = svc.clock()
    kept = {}
    if same_version(current, photo):
        kept = {name: current[name] for name in _KEPT_FOR_THE_SAME_VERSION if current.get(name) is not None}
        if current["status"] != PENDING:
            kept.pop("attempts", None)
            kept.pop("pendingSince", None)
    fields = {
        "pendingSince": moment,
        "uploadedAt": photo.stored_at or moment,
        **kept,
        "sequencer": max(filter(None, [photo.sequencer, current and current.get("sequencer")]), default=None),
        "facesEtag": _faces_etag(current),
        "owed": (current or {}).get("owed"),
        "running": _running(current, moment),
        "retryAt": iso_after(moment, retry_in),
        **exclusions.carried(current),
        **extra,
    }
    return image_record(photo, PENDING, face_count=current["faceCount"] if current else 0, moment=moment, **fields)


# What a record of one version keeps when it is written again for that version.
_KEPT_FOR_THE_SAME_VERSION = ("attempts", "error", "enrolment", "uploadedAt", "pendingSince", "redrives")


def _refresh(svc: Services, current: dict, photo: StoredPhoto) -> dict | None:
    """These bytes are indexed already: keep their faces, follow the
    metadata, version and sequencer of the newest upload (a new version
    is a new upload: its enrolment is its own). None when another writer
    came first."""
    newer = {
        "metadata": photo.metadata,
        "versionId": photo.version_id or current.get("versionId"),
        "sequencer": max(filter(None, [photo.sequencer, current.get("sequencer")]), default=None),
    }
    if all(current.get(name) == value for name, value in newer.items()):
        return current
    image = {**current, **{k: v for k, v in newer.items() if v is not None}, "updatedAt": svc.clock()}
    if not same_version(current, photo):
        image["uploadedAt"] = photo.stored_at or image["updatedAt"]
        image.pop("enrolment", None)
    if not _enrolled(image):  # owed until done: a lost event leaves it to the re-drive
        owed = image.get("owed") or {}
        image["owed"] = {**owed, "enrol": True, "since": owed.get("since") or image["updatedAt"]}
    return svc.records.put_image(image, current["revision"])


def _attempt(svc: Services, photo: StoredPhoto, claimed: dict, token: str, attempts: int, started: float) -> object:
    """IndexFaces on this version, then the commit. `token` marks this
    attempt in the record's `running` until it ends."""
    try:
        result = svc.engine.index_faces(photo.version, external_image_id(photo.key))
    except NotFound:  # the version is gone (replaced or deleted meanwhile): decide again
        _end_attempt(svc, photo, claimed, token)
        return _AGAIN
    except Throttled:
        _end_attempt(svc, photo, claimed, token)
        logs.log_indexed(photo.key, claimed, started, outcome="throttled")
        raise
    except ImageRejected as e:
        failed = image_record(photo, FAILED, error=e.message, moment=svc.clock())  # no attempts: nothing may pass
        return _conclude(svc, photo, failed, [], claimed, token, started)
    except Exception as e:
        return _failed(svc, photo, claimed, token, attempts, e, started)
    faces = [{**record["Face"], "imageKey": photo.key} for record in result["FaceRecords"]]
    image = image_record(
        photo,
        INDEXED if faces else NO_FACES,
        face_count=len(faces),
        moment=svc.clock(),
        imageId=faces[0]["ImageId"] if faces else None,
        unindexedFaces=result.get("UnindexedFaces", []),
        facesEtag=photo.etag,
    )
    try:
        return _conclude(svc, photo, image, faces, claimed, token, started)
    except Exception as e:
        if _committed(svc, photo.key, faces):
            raise  # the commit took: what follows it is owed on the record, for the next run
        svc.engine.delete_faces([face["FaceId"] for face in faces])
        latest = svc.records.get_image(photo.key) or claimed
        if isinstance(e, Throttled):  # back-pressure of any service (a throttled commit): handed back too
            _end_attempt(svc, photo, latest, token)
            logs.log_indexed(photo.key, latest, started, outcome="throttled")
            raise
        return _failed(svc, photo, latest, token, attempts, e, started)


def _failed(
    svc: Services, photo: StoredPhoto, claimed: dict, token: str, attempts: int, error: Exception, started: float
):
    """A failure that may pass: recorded (the attempt is counted already) and
    raised, for the caller to retry; the last attempt ends the version
    `failed` with the reason, unless another attempt may still commit."""
    unexpected = not isinstance(error, FaceprintError)
    reason = f"unexpected {type(error).__name__} (see the log)" if unexpected else error.message
    mine = same_version(claimed, photo) and claimed["status"] == PENDING
    attempt = claimed.get("attempts", 1) if mine else 0
    log.warning(  # no key, no message (both name the photo): the record keeps them
        "indexing failed (attempt %d of %d): %s", attempt, attempts, logs.error_kind(error), exc_info=unexpected
    )
    if mine and attempt >= attempts:
        verdict = f"Indexing failed {attempt} times; the last time: {reason}"
        outcome = _give_up(svc, photo, claimed, token, verdict, started)
        if outcome is not _DEFERRED:
            return outcome
    if mine:
        retry = _end_attempt(svc, photo, claimed, token, counted=True, error=reason)
        logs.log_indexed(photo.key, retry or claimed, started, outcome="retry")
    raise error


def _give_up(svc: Services, photo: StoredPhoto, base: dict, token: str | None, error: str, started: float) -> object:
    """The attempts ran out. The version ends `failed` with the reason and
    without faces, unless the faces on record come from these very bytes (a
    reindex that failed): then they stay, and the record says so. No
    verdict (_DEFERRED) while another attempt at the version may still be
    under way: it may commit. A verdict whose write loses decides again."""
    if _under_way(base, svc.clock(), mine=token):
        return _DEFERRED
    if _faces_etag(base) == photo.etag:
        moment = svc.clock()
        kept = {**base, "status": INDEXED if base["faceCount"] else NO_FACES, "error": error, "updatedAt": moment}
        kept["running"] = _running(base, moment, mine=token)
        for name in ("attempts", "retryAt", "pendingSince"):
            kept.pop(name, None)
        written = svc.records.put_image(_without_none(kept), base["revision"])
        return _AGAIN if written is None else _finish(svc, written)
    moment = svc.clock()
    failed = image_record(photo, FAILED, error=error, attempts=max(1, base.get("attempts") or 0), moment=moment)
    if base.get("faceCount") or svc.records.faces_of(photo.key):  # an older version's faces go with it
        return _conclude(svc, photo, failed, [], base, token, started, decide_again=True)
    # No faces to replace: a plain write, which a commit that keeps failing cannot stop.
    written = svc.records.put_image(
        _without_none({**failed, **_carried(base, photo), "running": _running(base, moment, mine=token)}),
        base["revision"],
    )
    if written is not None:
        logs.log_indexed(photo.key, written, started, outcome="failed")
    return _AGAIN if written is None else written


def _end_attempt(
    svc: Services, photo: StoredPhoto, record: dict, token: str, counted: bool = False, error: str | None = None
) -> dict | None:
    """End the attempt `token` without an outcome: its mark off the record,
    uncounted (throttled, or the version went) unless `counted` (a failure
    that may pass, with its `error`), and the photo due again a while
    later. Against other writers too, as long as the record is still this
    version's, pending, with the attempt's mark: an attempt that stays
    marked keeps `repair` and the verdicts waiting for nothing."""
    for _ in range(WRITE_ROUNDS):
        if (
            record is None
            or not same_version(record, photo)
            or record["status"] != PENDING
            or token not in record.get("running", [])
        ):
            return record
        moment = svc.clock()
        ended = {**record, "updatedAt": moment, "retryAt": iso_after(moment, REDRIVE_AFTER_SECONDS)}
        ended["running"] = _running(record, moment, mine=token)
        if not counted:
            ended["attempts"] = record.get("attempts", 1) - 1 or None
        if error is not None:
            ended["error"] = error
        written = svc.records.put_image(_without_none(ended), record["revision"])
        if written is not None:
            return written
        record = svc.records.get_image(photo.key)
    return None


def _under_way(record: dict | None, moment: str, mine: str | None = None) -> bool:
    """Whether an attempt other than `mine` may still be under way on the record."""
    since = iso_before(moment, RUN_GRACE_SECONDS)
    return any(mark != mine and attempt_may_run(mark, since) for mark in (record or {}).get("running", []))


def _conclude(
    svc: Services,
    photo: StoredPhoto,
    image: dict,
    faces: list[dict],
    base: dict | None,
    token: str | None,
    started: float,
    decide_again: bool = False,
) -> object:
    """Commit this version's outcome (its faces, or none) by compare-and-set
    on `base`, the record as read, with what the commit leaves to do
    (`owed`); then do it. When another writer came first, read again: if
    this version is still the bucket's and not indexed by another run,
    commit over it; else this run lost and takes its faces back. A verdict
    of attempts run out (`decide_again`) never commits over another
    writer: the caller decides again (another attempt may have begun)."""
    key = photo.key
    new_ids = {face["FaceId"] for face in faces}
    for _ in range(WRITE_ROUNDS):
        faces, image = exclusions.honour(svc, base, photo.etag, faces, image)  # deleted faces stay deleted
        listed = [face for face in svc.records.faces_of(key) if face["FaceId"] not in new_ids]
        record = {**image, **_carried(base, photo)}
        enrol = record["status"] in (INDEXED, NO_FACES) and not _enrolled(record)
        owed = _owed(svc, base, listed, faces, photo, enrol)
        record = _without_none({**record, "owed": owed, "running": _running(base, image["updatedAt"], mine=token)})
        committed = svc.records.commit_faces(record, faces, _revision(base))
        if committed is not None:
            if svc.photos.head(key) is None:  # a delete raced this run: it stands
                return _forget(svc, key, committed.record, started)
            logs.log_indexed(key, committed.record, started, outcome="indexed")
            return _finish(svc, committed.record)
        if decide_again:
            return _AGAIN
        base = svc.records.get_image(key)
        if _lost(base, svc.photos.head(key), photo):
            svc.engine.delete_faces(sorted(new_ids))
            logs.log_indexed(key, base, started, outcome="lost")
            return base
    svc.engine.delete_faces(sorted(new_ids))
    raise ServiceUnavailable(f"Image {key!r} kept changing while it was being indexed; retry.")


def _owed(
    svc: Services, base: dict | None, listed: list[dict], faces: list[dict], photo: StoredPhoto, enrol: bool
) -> dict | None:
    """What a commit leaves to do: the faces it replaces leave the collection
    (with those owed already), and when they came from the same bytes (a
    reindex) each new face that stands on one takes its person; the
    enrolment by upload the photo asks for, when not done."""
    owed = dict((base or {}).get("owed") or {})
    retire = list(dict.fromkeys([*owed.get("retire", []), *(face["FaceId"] for face in listed)]))
    carry = dict(owed.get("carry", {}))
    if _faces_etag(base) == photo.etag:
        for old in listed:
            new = max(faces, key=lambda face: people.overlap(old["BoundingBox"], face["BoundingBox"]), default=None)
            if new is not None and people.overlap(old["BoundingBox"], new["BoundingBox"]) > CARRY_OVER_OVERLAP:
                carry[old["FaceId"]] = _without_none({"FaceId": new["FaceId"], "UserId": old.get("UserId")})
    if not retire and not enrol:
        return None
    return _without_none(
        {"retire": retire, "carry": carry, "enrol": enrol or None, "since": owed.get("since") or svc.clock()}
    )


def _finish(svc: Services, image: dict) -> object:
    """Do what the commit left owed (retire the replaced faces, carrying
    their people over; enrol by upload), then strike it off."""
    owed = image.get("owed")
    if owed and owed.get("retire"):
        people.retire_faces(svc, owed["retire"], owed.get("carry", {}))
    image = _enrol(svc, image)
    if image is None or not image.get("owed"):
        return image
    return _strike_off(svc, image, owed)


def _strike_off(svc: Services, image: dict, done: dict) -> object:
    """Remove the work done from the record's `owed`, keeping whatever was
    added meanwhile."""
    for _ in range(WRITE_ROUNDS):
        owed = image.get("owed") or {}
        retire = [face_id for face_id in owed.get("retire", []) if face_id not in set(done.get("retire", []))]
        carry = {old: new for old, new in owed.get("carry", {}).items() if old in set(retire)}
        enrol = owed.get("enrol") and not _enrolled(image) or None
        left = _without_none({**owed, "retire": retire, "carry": carry, "enrol": enrol})
        written = svc.records.put_image(
            _without_none({**image, "owed": left if retire or enrol else None}), image["revision"]
        )
        if written is not None:
            return written
        image = svc.records.get_image(image["key"])
        if image is None or not image.get("owed"):
            return image
    return _AGAIN


def _enrol(svc: Services, image: dict | None) -> dict | None:
    """Enrol by upload, when the photo names a person (people.enrol_from_upload)."""
    if image is None or svc.people is None or image.get("etag") is None:
        return image
    return people.enrol_from_upload(svc, image)


def _enrolled(image: dict) -> bool:
    """Whether the enrolment by upload the record's metadata asks for (if
    any) is done: recorded on it, associated or refused."""
    person_id = image.get("metadata", {}).get(people.PERSON_METADATA)
    return person_id is None or image.get("enrolment", {}).get("personId") == person_id


def _committed(svc: Services, key: str, faces: list[dict]) -> bool:
    """Whether a commit whose reply was lost took effect after all."""
    if not faces:
        return False
    return faces[0]["FaceId"] in {face["FaceId"] for face in svc.records.faces_of(key)}


def _lost(latest: dict | None, head: StoredPhoto | None, photo: StoredPhoto) -> bool:
    """Whether another writer's record must stand: the photo is gone or
    holds another version now (read after the record: the bucket orders
    the versions), or a duplicate run already indexed these bytes."""
    if head is None or _superseded(head, photo.version):
        return True
    return is_final_for(latest, photo)


def _carried(base: dict | None, photo: StoredPhoto) -> dict:
    """What an outcome keeps of the record it replaces: the faces removed
    for good (core/exclusions.py); of the same version, its first upload
    time and its enrolment too."""
    if not same_version(base, photo):
        return exclusions.carried(base)
    kept = {name: base[name] for name in ("uploadedAt", "enrolment") if base.get(name) is not None}
    return {**exclusions.carried(base), **kept}


def _running(record: dict | None, moment: str, mine: str | None = None, add: str | None = None) -> list[str] | None:
    """The record's attempts under way (each its start time and a tag):
    without `mine`, with `add`, and without those over by now: begun
    RUN_GRACE_SECONDS or more ago, or by a process of this machine that is
    gone (a crash ended them)."""
    since = iso_before(moment, RUN_GRACE_SECONDS)
    running = [entry for entry in (record or {}).get("running", []) if entry != mine and attempt_may_run(entry, since)]
    return [*running, add] if add else running or None


def _faces_etag(record: dict | None) -> str | None:
    """The etag of the bytes the record's faces were indexed from (records
    written before `facesEtag` existed: their own, once final)."""
    if record is None:
        return None
    if record.get("facesEtag"):
        return record["facesEtag"]
    return record["etag"] if record["status"] in (INDEXED, NO_FACES) else None


def _revision(record: dict | None) -> int | None:
    return record["revision"] if record is not None else None


def _without_none(record: dict) -> dict:
    return {name: value for name, value in record.items() if value is not None}
