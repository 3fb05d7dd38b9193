"""Indexing, the same protocol in both wirings.

An upload validates the photo, stores it, records it `pending` and hands
that version to the indexer: offline the indexer runs right after the store
returns; on AWS the bucket's ObjectCreated event is the trigger.

An indexing run works on one version of a photo (the event's etag, version
id and sequencer), and stays right under S3's delivery rules: events come
at least once, in any order, possibly at the same time.

- A run for a version the bucket no longer holds, or older than the one
  recorded (sequencers), does nothing: the newer version's own event comes.
- A run for content already indexed (a repeated event, the same bytes put
  again) changes nothing but the metadata.
- Otherwise it indexes the version (IndexFaces reads that very version) and
  commits the faces with a compare-and-set on the image record's revision.
  If another writer came first, it reads again: when its own version is
  still the newest it commits again over it; when it lost (a duplicate
  finished first, a newer version is recorded, the photo is gone) it
  deletes the faces it added. After committing it checks the photo is
  still there, so a delete racing it is never undone.

Whatever the interleaving, each stored photo's faces end up exactly once in
the collection and in the records, labelled from its current version.

Enrol by upload (`x-amz-meta-person`) runs once a run has committed (or
found) the current version's faces: only then are they real. Its outcome
is written on the image record, so a repeated event does not redo it.
"""

import logging
import time
from dataclasses import replace

from chalicelib.core import logs, people
from chalicelib.core.errors import FaceprintError, ImageRejected, NotFound, ServiceUnavailable, Throttled
from chalicelib.core.images import prepare_upload
from chalicelib.core.keys import external_image_id
from chalicelib.core.ports import PhotoVersion, StoredPhoto
from chalicelib.core.records import (
    FAILED,
    INDEXED,
    NO_FACES,
    PENDING,
    image_record,
    is_final_for,
    is_older,
    iso_before,
    now,
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
# The scheduled re-drive picks up photos pending for longer than this.
REDRIVE_AFTER_SECONDS = 300
REDRIVE_BATCH = 50
# Runs from the indexing queue (core/index_queue.py): the queue bounds the
# tries of an event by its receives, so the record's attempts never end a
# photo `failed` by themselves; a photo re-driven this many times (its event
# lost, or its message dead-lettered by crashes) ends `failed`.
QUEUE_ATTEMPTS = 10**9
MAX_REDRIVES = 3


def upload_image(svc: Services, key: str, data: bytes, metadata: dict[str, str]) -> dict:
    """Validate and store a photo (HEIC, WebP and AVIF converted to JPEG),
    record it pending, and hand it to the indexer (offline: now; on AWS:
    the S3 event). The reply is the record as it stands: `indexed`
    offline, usually `pending` on AWS."""
    if people.PERSON_METADATA in metadata:
        people.validate_person_id(metadata[people.PERSON_METADATA])
    upload = prepare_upload(data)
    stored = svc.photos.put(key, upload.data, upload.content_type, metadata, upload.original_content_type)
    image = _record_pending(svc, stored)
    if svc.index_on_upload:
        image = _index_now(svc, stored.version) or image
    faces = svc.records.faces_of(key) if image["status"] != PENDING else []
    return {"image": image, "faces": faces}


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
    when the photo is gone. A failure that may pass (throttling, a crashed
    worker) is recorded and raised, for the caller to retry, until the
    version has had `attempts` runs; then it ends `failed` with the reason."""
    started = time.perf_counter()
    photo = svc.photos.head(key)
    if photo is None:
        logs.log_indexed(key, None, started, outcome="gone")
        return None
    if version is not None:
        if _superseded(photo, version):
            logs.log_indexed(key, None, started, outcome="stale")
            return svc.records.get_image(key)
        photo = replace(photo, sequencer=version.sequencer or photo.sequencer)
    current = svc.records.get_image(key)
    if current is not None and is_older(photo.sequencer, current.get("sequencer")):
        logs.log_indexed(key, current, started, outcome="stale")
        return current
    if is_final_for(current, photo) and not force:
        return _enrol(svc, _refresh(svc, current, photo))
    # The same bytes indexed again (a reindex): their faces' people carry over.
    owned = [f for f in svc.records.faces_of(key) if f.get("UserId")] if is_final_for(current, photo) else []
    image, faces = _analyse(svc, photo, current, attempts, started)
    if image is None:
        return svc.records.get_image(key)
    record, outcome = _commit(svc, photo, image, faces, current)
    logs.log_indexed(key, record, started, outcome=outcome)
    if outcome != "indexed":
        return record
    if owned and svc.people is not None:
        people.carry_over(svc, owned, faces)
    return _enrol(svc, record)


def _enrol(svc: Services, image: dict | None) -> dict | None:
    """Enrol by upload, when the photo names a person (people.enrol_from_upload)."""
    if image is None or svc.people is None or image.get("etag") is None:
        return image
    return people.enrol_from_upload(svc, image)


def redrive_pending(svc: Services, moment: str | None = None) -> dict:
    """Index again the photos left pending for more than a few minutes (an
    S3 event lost after Lambda's retries). Runs on a schedule on AWS; each
    photo's failure is recorded on it and does not stop the others."""
    keys = svc.records.list_pending(iso_before(moment or now(), REDRIVE_AFTER_SECONDS), REDRIVE_BATCH)
    done = 0
    for key in keys:
        try:
            index_photo(svc, key)
        except Exception:  # recorded on the photo and logged by index_photo: go on with the others
            continue
        done += 1
    return {"pending": len(keys), "indexed": done}


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
    bucket holds another version now, a newer one is recorded, or a run
    indexed these bytes meanwhile. The faces of an earlier version go, as
    with any version that failed. Returns the record as it stands."""
    started = time.perf_counter()
    photo = svc.photos.head(key)
    if photo is None or (version is not None and _superseded(photo, version)):
        return svc.records.get_image(key)
    if version is not None:
        photo = replace(photo, sequencer=version.sequencer or photo.sequencer)
    current = svc.records.get_image(key)
    if current is not None and (is_older(photo.sequencer, current.get("sequencer")) or is_final_for(current, photo)):
        return current
    attempts = max(1, current.get("attempts", 0) if current and current["etag"] == photo.etag else 0)
    image = image_record(photo, FAILED, error=reason, attempts=attempts)
    record, outcome = _commit(svc, photo, image, [], current)
    logs.log_indexed(key, record, started, outcome="failed" if outcome == "indexed" else outcome)
    return record


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


def remove_photo(svc: Services, key: str, sequencer: str | None = None) -> bool:
    """An ObjectRemoved event: drop the records and faces of a photo the
    bucket no longer holds (deleted by other means than the API, which
    removes them itself). Nothing changes while the key holds a photo (put
    again since: its own event indexes it), or when the record is of a
    version put after this removal. True when it removed something."""
    started = time.perf_counter()
    for _ in range(WRITE_ROUNDS):
        if svc.photos.head(key) is not None:
            return False
        current = svc.records.get_image(key)
        if current is None or is_older(sequencer, current.get("sequencer")):
            return False
        removed = svc.records.remove_image(key, current["revision"])
        if removed is not None:
            svc.engine.delete_faces(removed)
            logs.log_indexed(key, None, started, outcome="gone")
            return True
    raise ServiceUnavailable(f"Image {key!r} kept changing while it was being removed; retry.")


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
    return photo.etag != version.etag


def _record_pending(svc: Services, photo: StoredPhoto) -> dict:
    """Record an upload pending, unless this very content is already
    indexed (the same bytes again, or an S3 event that beat the reply)."""
    for _ in range(WRITE_ROUNDS):
        current = svc.records.get_image(photo.key)
        if is_final_for(current, photo):
            return current
        written = svc.records.put_image(_pending_record(photo, current), _revision(current))
        if written is not None:
            return written
    raise ServiceUnavailable(f"Image {photo.key!r} kept changing while it was being recorded; retry.")


def _pending_record(photo: StoredPhoto, current: dict | None, **extra) -> dict:
    same = current is not None and current["etag"] == photo.etag
    return image_record(
        photo,
        PENDING,
        face_count=current["faceCount"] if current else 0,
        # The faces on record stay until the new version replaces them, and
        # so does the newest sequencer seen: the order of versions.
        sequencer=max(filter(None, [photo.sequencer, current and current.get("sequencer")]), default=None),
        pendingSince=current["pendingSince"] if same and current.get("pendingSince") else now(),
        **extra,
    )


def _refresh(svc: Services, current: dict, photo: StoredPhoto) -> dict:
    """These bytes are indexed already: keep their faces, follow the
    metadata, version and sequencer of the newest upload."""
    for _ in range(WRITE_ROUNDS):
        newer = {
            "metadata": photo.metadata,
            "versionId": photo.version_id or current.get("versionId"),
            "sequencer": max(filter(None, [photo.sequencer, current.get("sequencer")]), default=None),
        }
        if all(current.get(name) == value for name, value in newer.items()):
            return current
        image = {**current, **{k: v for k, v in newer.items() if v is not None}}
        written = svc.records.put_image(image, current["revision"])
        if written is not None:
            return written
        current = svc.records.get_image(photo.key)
        if not is_final_for(current, photo):
            return current  # another version took over meanwhile
    raise ServiceUnavailable(f"Image {photo.key!r} kept changing while it was being updated; retry.")


def _analyse(
    svc: Services, photo: StoredPhoto, current: dict | None, attempts: int, started: float
) -> tuple[dict | None, list[dict]]:
    """IndexFaces on this version: the image record and face records to
    commit, or (None, []) when the version is gone. Failures that may pass
    are recorded and raised until the attempts run out."""
    attempt = (current.get("attempts", 0) if current and current["etag"] == photo.etag else 0) + 1
    try:
        result = svc.engine.index_faces(photo.version, external_image_id(photo.key))
    except NotFound:
        logs.log_indexed(photo.key, None, started, outcome="stale")  # replaced or deleted meanwhile
        return None, []
    except ImageRejected as e:
        return image_record(photo, FAILED, error=e.message), []
    except Throttled:
        raise  # back-pressure: the caller tries again later, and it never counts as an attempt
    except Exception as e:
        reason = e.message if isinstance(e, FaceprintError) else f"unexpected {type(e).__name__} (see the log)"
        log.warning("indexing %r failed (attempt %d of %d): %s", photo.key, attempt, attempts, reason, exc_info=True)
        if attempt >= attempts:
            error = f"Indexing failed {attempt} times; the last time: {reason}"
            return image_record(photo, FAILED, error=error, attempts=attempt), []
        pending = _pending_record(photo, current, attempts=attempt, error=reason)
        svc.records.put_image(pending, _revision(current))  # lost to another writer: it carries on
        logs.log_indexed(photo.key, pending, started, outcome="retry")
        raise
    faces = [{**record["Face"], "imageKey": photo.key} for record in result["FaceRecords"]]
    image = image_record(
        photo,
        INDEXED if faces else NO_FACES,
        face_count=len(faces),
        imageId=faces[0]["ImageId"] if faces else None,
        unindexedFaces=result.get("UnindexedFaces", []),
    )
    return image, faces


def _commit(
    svc: Services, photo: StoredPhoto, image: dict, faces: list[dict], current: dict | None
) -> tuple[dict | None, str]:
    """Compare-and-set the image and its faces. Returns the record as this
    run leaves it and what happened: "indexed" (this version is on
    record), "lost" (another writer's record stands; this run's faces are
    deleted) or "gone" (the photo was deleted meanwhile)."""
    new_ids = [face["FaceId"] for face in faces]
    latest = current
    for _ in range(WRITE_ROUNDS):
        # Keep the newest sequencer known: the order of versions outlives a forced run.
        image["sequencer"] = photo.sequencer or (latest or {}).get("sequencer")
        replaced = svc.records.commit_faces(_without_none(image), faces, _revision(latest))
        if replaced is not None:
            svc.engine.delete_faces([face_id for face_id in replaced if face_id not in set(new_ids)])
            committed = {**_without_none(image), "revision": (_revision(latest) or 0) + 1}
            return _unless_deleted(svc, photo.key, committed, new_ids)
        latest = svc.records.get_image(photo.key)
        if _lost(latest, svc.photos.head(photo.key), photo):
            svc.engine.delete_faces(new_ids)
            return latest, "lost"
    svc.engine.delete_faces(new_ids)
    raise ServiceUnavailable(f"Image {photo.key!r} kept changing while it was being indexed; retry.")


def _lost(latest: dict | None, head: StoredPhoto | None, photo: StoredPhoto) -> bool:
    """Whether another writer's record must stand: the photo is gone or
    holds other bytes now, a newer version is recorded, or a duplicate run
    already indexed these bytes."""
    if head is None or head.etag != photo.etag:
        return True
    if latest is None:
        return False
    return is_older(photo.sequencer, latest.get("sequencer")) or is_final_for(latest, photo)


def _unless_deleted(svc: Services, key: str, image: dict, new_ids: list[str]) -> tuple[dict | None, str]:
    """A delete may have removed the photo while this run indexed it: then
    take back what the run wrote, so the delete stands."""
    if svc.photos.head(key) is not None:
        return image, "indexed"
    removed = svc.records.remove_image(key, image["revision"])
    svc.engine.delete_faces(removed if removed is not None else new_ids)
    return None, "gone"


def _revision(record: dict | None) -> int | None:
    return record["revision"] if record is not None else None


def _without_none(record: dict) -> dict:
    return {name: value for name, value in record.items() if value is not None}
