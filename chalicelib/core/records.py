"""The image record: its statuses, how it is built from a stored photo, and
how the versions of one key are ordered."""

from datetime import UTC, datetime, timedelta

from chalicelib.core.ports import StoredPhoto

PENDING, INDEXED, NO_FACES, FAILED = "pending", "indexed", "no_faces", "failed"
FINAL = frozenset({INDEXED, NO_FACES, FAILED})
SEQUENCER_WIDTH = 32  # S3 sequencers are hex strings of varying length


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_before(moment: str, seconds: float) -> str:
    return (datetime.fromisoformat(moment) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def image_record(photo: StoredPhoto, status: str, face_count: int = 0, **extra) -> dict:
    """The record of one version of a photo. `extra` adds the optional
    fields (imageId, error, unindexedFaces, attempts, pendingSince)."""
    record = {
        "key": photo.key,
        "status": status,
        "metadata": photo.metadata,
        "contentType": photo.content_type,
        "size": photo.size,
        "etag": photo.etag,
        "faceCount": face_count,
        "updatedAt": now(),
    }
    if photo.version_id:
        record["versionId"] = photo.version_id
    if photo.sequencer:
        record["sequencer"] = photo.sequencer
    if photo.original_content_type and photo.original_content_type != photo.content_type:
        record["originalContentType"] = photo.original_content_type
    record.update({name: value for name, value in extra.items() if value is not None})
    return record


def normalize_sequencer(sequencer: str | None) -> str | None:
    """S3's rule: sequencers of one key compare as hex strings once the
    shorter is left-padded with zeros. Stored padded, they compare as
    plain strings (in Python, SQLite and DynamoDB alike)."""
    if not sequencer:
        return None
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0")


def is_older(sequencer: str | None, than: str | None) -> bool:
    """True only when both are known and `sequencer` came first."""
    return bool(sequencer and than and sequencer < than)


def is_final_for(record: dict | None, photo: StoredPhoto) -> bool:
    """Whether `record` already holds the indexing of these very bytes
    (same etag: the same content, whichever version carried it)."""
    return record is not None and record["etag"] == photo.etag and record["status"] in FINAL
