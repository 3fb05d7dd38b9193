"""The image record: its statuses, how it is built from a stored photo, how
the versions of one key are told apart and ordered, its revisions, and when
the re-drive owes it a visit."""

import os
import secrets
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chalicelib.core.ports import StoredPhoto

PENDING, INDEXED, NO_FACES, FAILED = "pending", "indexed", "no_faces", "failed"
FINAL = frozenset({INDEXED, NO_FACES, FAILED})
SEQUENCER_WIDTH = 32  # S3 sequencers are hex strings of varying length
# A run in flight (an indexing attempt, its clean-up) is over within this
# long: Lambda's longest timeout is 15 minutes, an embedded run is bounded by
# the analysis time limit. Until then what it may leave behind is not touched.
RUN_GRACE_SECONDS = 15 * 60
# Revisions: a new record starts at a random one, and every write adds one,
# so a record made again after a removal never repeats the old one's numbers
# (a run holding the old record's revision can never write over the new).
_REVISION_BITS = 52  # exact in a JSON number and a DynamoDB N


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso_before(moment: str, seconds: float) -> str:
    return (datetime.fromisoformat(moment) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def iso_after(moment: str, seconds: float) -> str:
    return iso_before(moment, -seconds)


class Processes:
    """Who this process is, which of its own attempts are under way, and
    whether a process of this machine is gone: what an attempt's mark says
    about where it runs. A process is named by its host, its pid and its
    start time (the kernel's, in clock ticks since boot, where /proc has
    it), so that a pid used again by another process (a container started
    again numbers its processes alike) never passes for the one that wrote
    the mark. A simulation gives its own."""

    def __init__(self) -> None:
        self._under_way: set[str] = set()  # the marks of this process's attempts under way
        self._lock = threading.Lock()
        self._named: tuple[int, str] = (0, "")

    def this(self) -> str:
        pid = os.getpid()
        if self._named[0] != pid:  # named once per process (a fork is another)
            self._named = (pid, f"{socket.gethostname()}:{pid}:{_start_time(pid)}")
        return self._named[1]

    def began(self, mark: str) -> None:
        with self._lock:
            self._under_way.add(mark)

    def ended(self, mark: str) -> None:
        with self._lock:
            self._under_way.discard(mark)

    def may_run(self, mark: str, where: str) -> bool:
        """Whether the attempt that wrote `mark` in the process `where` may
        be under way: this process knows its own; of another process of
        this machine, as long as that process runs; of another machine (a
        Lambda), always."""
        if where == self.this():
            with self._lock:
                return mark in self._under_way
        return not self.gone(where)

    def gone(self, where: str) -> bool:
        """Whether the process named `where` ("host:pid:start", or the
        older "host:pid") is a process of this machine that has ended. One
        of another machine (a Lambda) may be under way: never gone."""
        host, _, rest = where.partition(":")
        pid, _, started = rest.partition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass  # it runs, as another user
        return bool(started) and started != _start_time(int(pid))


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of
    /proc/<pid>/stat), or "" where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


PROCESSES = Processes()


def attempt_mark(moment: str) -> str:
    """What an indexing attempt writes in its record's `running` while it is
    under way: when it began, and where (host, process and its start), so
    that another process on the same machine can tell a crashed run from
    one under way. Under way until attempt_ended."""
    mark = f"{moment}#{PROCESSES.this()}#{secrets.token_hex(4)}"
    PROCESSES.began(mark)
    return mark


def attempt_ended(mark: str) -> None:
    """The attempt is over in this process, whatever its mark on the record
    says now (a write that would have taken it off failed)."""
    PROCESSES.ended(mark)


def attempt_may_run(mark: str, since: str) -> bool:
    """Whether the attempt that wrote `mark` may still be under way: begun
    after `since` (RUN_GRACE_SECONDS ago), not an attempt of this process
    that has ended, and not from a process of this machine that has ended
    (a server killed, or stopped mid-run)."""
    if mark <= since:
        return False
    where = mark.split("#")[1] if mark.count("#") >= 2 else ""
    return PROCESSES.may_run(mark, where)


def first_revision() -> int:
    return secrets.randbits(_REVISION_BITS) + 1


def next_revision(expected: int | None) -> int:
    """The revision a write at `expected` (None: a new record) gives the record."""
    return first_revision() if expected is None else expected + 1


def image_record(photo: StoredPhoto, status: str, face_count: int = 0, moment: str | None = None, **extra) -> dict:
    """The record of one version of a photo. `extra` adds the optional
    fields (imageId, error, unindexedFaces, attempts, pendingSince, ...)."""
    record = {
        "key": photo.key,
        "status": status,
        "metadata": photo.metadata,
        "contentType": photo.content_type,
        "size": photo.size,
        "etag": photo.etag,
        "faceCount": face_count,
        "updatedAt": moment or now(),
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


def same_version(record: dict | None, photo: StoredPhoto) -> bool:
    """Whether `record` was written for this very version of the photo (not
    only the same bytes)."""
    if record is None:
        return False
    return _same((record["etag"], record.get("versionId"), record.get("sequencer")), photo)


def same_record_version(a: dict, b: dict) -> bool:
    """Whether two image records were written for the same version."""
    return _same(
        (a["etag"], a.get("versionId"), a.get("sequencer")),
        StoredPhoto(b["key"], b["etag"], 0, "", version_id=b.get("versionId"), sequencer=b.get("sequencer")),
    )


def _same(recorded: tuple[str, str | None, str | None], photo: StoredPhoto) -> bool:
    """S3's version ids when both are known, else the sequencers (the
    embedded store gives each put one; a record's sequencer is the newest
    seen, so it names its version only where there are no version ids),
    else the etags."""
    etag, version_id, sequencer = recorded
    if version_id and photo.version_id:
        return version_id == photo.version_id
    if sequencer and photo.sequencer and not version_id and not photo.version_id:
        return sequencer == photo.sequencer
    return etag == photo.etag


def is_final_for(record: dict | None, photo: StoredPhoto) -> bool:
    """Whether `record` already holds the outcome of indexing these bytes:
    `indexed` and `no_faces` are facts about the content (same etag,
    whichever version carried it); `failed` only about the version that
    failed, so the same bytes uploaded again are tried again."""
    if record is None or record["etag"] != photo.etag or record["status"] not in FINAL:
        return False
    return record["status"] != FAILED or same_version(record, photo)


def redrive_due(record: dict) -> str | None:
    """When the scheduled re-drive should next look at this record, or None
    when nothing is owed: a pending photo (from its `retryAt`: a while after
    the upload, after its last attempt began or failed), or work a crash
    left after a commit (`owed`). The stores index this (a sparse index)."""
    if record["status"] == PENDING:
        return record.get("retryAt") or record.get("pendingSince") or record["updatedAt"]
    if record.get("owed"):
        return record["owed"].get("since") or record["updatedAt"]
    return None
