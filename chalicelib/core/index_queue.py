"""The indexing queue on AWS: the bucket's events as the queue holds them
(S3 sends its ObjectCreated and ObjectRemoved events there: `make
aws-setup`), what an indexing worker does with a batch of them, and what
the scheduled re-drive puts back. app.py's SQS handler and the simulation
(tests/support/aws_volume.py) both run this code.

A worker handles the messages of its batch one by one:

- ObjectCreated indexes that version (indexing.index_queued_photo), at the
  pace of the stage's IndexFaces share (core/pacing.py); ObjectRemoved
  drops the records of a photo the bucket no longer holds
  (indexing.remove_photo); S3's test event is nothing to do.
- A throttle (a service refused a call for its rate quota, after
  botocore's retries) is back-pressure: that message and the rest of the
  batch are sent to the queue again, delayed, and the originals deleted.
  SQS counts a receive each time a message is received and only a new
  message starts from none, so throttling never moves a photo towards the
  dead-letter queue and never ends it `failed`.
- Any other failure gives the message back to the queue, seen again after
  a backoff; that counts a receive. On its MAX_RECEIVES-th receive the
  photo is recorded `failed` with the reason, and SQS moves the message to
  the dead-letter queue at its next receive (the queue's redrive policy).
  Chalice reports no partial batch failures: the worker deletes what it is
  done with itself, then raises, so that Lambda gives back only the failed.
- A message is started only while RESERVE_SECONDS of the invocation are
  left; the rest are sent again, not counted, rather than cut off by
  Lambda's timeout. And the batch is held only as long as the invocation
  can run: a worker that dies (out of memory, a crash) gives its messages
  back within minutes, not after the queue's visibility timeout (six times
  the function's, as AWS advises for the time before an invocation).

The re-drive (every REDRIVE_EVERY_SECONDS) sends again the records it
owes a visit (records.redrive_due: photos pending for minutes since their
upload or last attempt, attempts under way once surely over, work a crash
left after a commit), whose event is gone: only when the queue is empty,
since until then every event still has its message there (waiting, in
flight, or delayed) and a photo pending in a backlog is not lost. S3
delivers an event in seconds, sometimes a minute or more, and SQS's counts
may lag a minute: a photo pending for minutes with the queue empty has no
event coming (one that still comes finds it indexed). The messages it
sends are indexed by the same paced workers."""

import json
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from chalicelib.core import indexing, logs
from chalicelib.core.errors import FaceprintError, Throttled
from chalicelib.core.ports import PhotoVersion, QueuedMessage
from chalicelib.core.records import iso_before, normalize_sequencer
from chalicelib.core.services import Services

log = logging.getLogger("faceprint")

# The queue's redrive policy (make aws-setup): a message received this many
# times goes to the dead-letter queue at its next receive. (AWS advises at
# least 5 for a Lambda event source.)
MAX_RECEIVES = 5
# Messages per invocation (the event source's batch size; 10 at most
# without a batching window).
BATCH_SIZE = 10
RESERVE_SECONDS = 30.0
# A failed message is seen again after RETRY_SECONDS x 2^(receives - 1); a
# throttled one is sent again THROTTLE_DELAY_SECONDS later (SQS delays a
# message 15 minutes at most).
RETRY_SECONDS = 30
THROTTLE_DELAY_SECONDS = (30, 120)
REDRIVE_EVERY_SECONDS = 60
HOLD_MARGIN_SECONDS = 30
# Photos pending longer than this are reported (the alarm "pending too long").
PENDING_TOO_LONG_SECONDS = 24 * 3600
PENDING_TOO_LONG_COUNTED = 1000
# A re-drive run sends at most half an hour of the stage's pace (at least
# REDRIVE_MIN, at most REDRIVE_MAX: what one run sends in well under its
# timeout), so that a large loss is caught up at nearly the quota's rate:
# the next run waits for the queue to drain.
REDRIVE_WORK_SECONDS = 1800
REDRIVE_MIN, REDRIVE_MAX = 1000, 30_000

CREATED, REMOVED = "created", "removed"
# A re-drive's message, and one a worker sent back (throttled, or out of
# time): the first counts a re-drive on the photo, the second does not.
REDRIVE_SOURCE, RESENT_SOURCE = "faceprint:redrive", "faceprint:resent"


@dataclass(frozen=True)
class PhotoEvent:
    """One record of a message: a photo created (the version it names) or removed."""

    kind: str
    key: str
    version: PhotoVersion | None = None
    sequencer: str | None = None
    redriven: bool = False


class BatchFailed(Exception):
    """Some messages of the batch failed: raised after the others are
    deleted, so that Lambda gives back only those."""

    def __init__(self, summary: dict) -> None:
        super().__init__(f"{summary['failed']} of {summary['messages']} message(s) failed: {summary['errors']}")
        self.summary = summary


def decode(body: str) -> list[PhotoEvent]:
    """The photo events of one message: S3's event notification (records
    of ObjectCreated:* and ObjectRemoved:*, keys URL-encoded), S3's test
    event (none), or a re-drive's. Raises ValueError for anything else."""
    try:
        message = json.loads(body)
    except ValueError as e:
        raise ValueError(f"Not an S3 event: {body[:200]!r}") from e
    if not isinstance(message, dict):
        raise ValueError(f"Not an S3 event: {body[:200]!r}")
    if message.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(message.get("Records"), list):
        raise ValueError(f"Not an S3 event: {body[:200]!r}")
    events = []
    for record in message["Records"]:
        stored = record.get("s3", {}).get("object", {})
        if not stored.get("key"):
            raise ValueError(f"An event names no key: {json.dumps(record)[:200]}")
        key = unquote_plus(stored["key"])
        sequencer = normalize_sequencer(stored.get("sequencer"))
        name = record.get("eventName", "")
        if name.startswith("ObjectRemoved"):
            events.append(PhotoEvent(REMOVED, key, sequencer=sequencer))
        elif name.startswith("ObjectCreated"):
            source = record.get("eventSource")
            version = None
            if source not in (REDRIVE_SOURCE, RESENT_SOURCE):
                version = PhotoVersion(key, stored.get("eTag", ""), stored.get("versionId"), sequencer)
            events.append(PhotoEvent(CREATED, key, version, sequencer, source == REDRIVE_SOURCE))
    return events


def redrive_body(key: str) -> str:
    """A re-drive's message: shaped like S3's, naming no version (the run
    indexes whatever the bucket holds then)."""
    record = {
        "eventSource": REDRIVE_SOURCE,
        "eventName": "ObjectCreated:Redrive",
        "s3": {"object": {"key": quote_plus(key)}},
    }
    return json.dumps({"Records": [record]})


def resent_body(body: str) -> str:
    """A message sent back to the queue: the same events, but a re-drive's
    no longer counts as one (it was counted when first received)."""
    if REDRIVE_SOURCE not in body:
        return body
    message = json.loads(body)
    for record in message.get("Records", []):
        if record.get("eventSource") == REDRIVE_SOURCE:
            record["eventSource"] = RESENT_SOURCE
    return json.dumps(message)


def handle_batch(
    svc: Services,
    messages: list[QueuedMessage],
    seconds_left: Callable[[], float],
    rng: random.Random | None = None,
) -> dict:
    """One worker invocation's batch (see the module's docstring). Returns
    what it did; raises BatchFailed when some messages failed."""
    rng = rng or random.Random()
    svc.queue.retry_after([message.receipt for message in messages], math.ceil(seconds_left()) + HOLD_MARGIN_SECONDS)
    done: list[QueuedMessage] = []
    failed: list[QueuedMessage] = []
    later: list[QueuedMessage] = []
    errors: list[str] = []
    throttled = False
    for position, message in enumerate(messages):
        if seconds_left() < RESERVE_SECONDS:
            later = messages[position:]
            break
        try:
            _handle(svc, message)
        except Throttled as e:
            log.info("throttled (%s): %d message(s) sent again, delayed", e.message, len(messages) - position)
            later, throttled = messages[position:], True
            break
        except Exception as e:  # any failure: the message goes back to the queue (bounded by MAX_RECEIVES)
            reason = e.message if isinstance(e, FaceprintError) else f"unexpected {type(e).__name__} (see the log)"
            log.warning(  # its kind only: a message names the photo
                "message failed (receive %d of %d): %s",
                message.receive_count,
                MAX_RECEIVES,
                logs.error_kind(e),
                exc_info=not isinstance(e, FaceprintError),
            )
            if message.receive_count >= MAX_RECEIVES:
                _give_up(svc, message, reason)
            svc.queue.retry_after([message.receipt], RETRY_SECONDS * 2 ** (min(message.receive_count, 8) - 1))
            failed.append(message)
            errors.append(reason)
        else:
            done.append(message)
    if later:
        delay = rng.randint(*THROTTLE_DELAY_SECONDS) if throttled else 0
        svc.queue.send([resent_body(message.body) for message in later], delay_seconds=delay)
    summary = {
        "messages": len(messages),
        "done": len(done),
        "sentAgain": len(later),
        "throttled": throttled,
        "failed": len(failed),
        "errors": errors,
    }
    if failed:
        svc.queue.delete([message.receipt for message in done + later])
        raise BatchFailed(summary)
    return summary


def _handle(svc: Services, message: QueuedMessage) -> None:
    for event in decode(message.body):
        if event.kind == REMOVED:
            indexing.remove_photo(svc, event.key)
        elif not event.redriven or message.receive_count > 1 or indexing.note_redrive(svc, event.key):
            indexing.index_queued_photo(svc, event.key, event.version)


def _give_up(svc: Services, message: QueuedMessage, reason: str) -> None:
    """The message's last receive: its photos end `failed` with the reason."""
    try:
        events = decode(message.body)
    except ValueError:
        return  # nothing to record it on: the dead-letter queue keeps it
    for event in events:
        if event.kind != CREATED:
            continue
        try:
            indexing.record_failure(
                svc, event.key, event.version, f"Indexing failed {message.receive_count} times; the last time: {reason}"
            )
        except Exception:  # the message goes to the dead-letter queue all the same, and the photo stays pending
            log.exception("could not record a photo failed")


def redrive_limit(svc: Services) -> int:
    return min(REDRIVE_MAX, max(REDRIVE_MIN, math.ceil(svc.settings.index_tps * REDRIVE_WORK_SECONDS)))


def redrive_lost(svc: Services, moment: str | None = None) -> dict:
    """The scheduled re-drive: when the queue is empty, send again the
    records the re-drive owes a visit (their events were lost: S3 did not
    deliver one, the queue expired it, or it was dead-lettered without a
    recorded failure; or a crash left work after a commit). Also counts the photos
    pending for more than PENDING_TOO_LONG_SECONDS, whatever the queue
    holds, for the alarm."""
    moment = moment or svc.clock()
    waiting = svc.queue.backlog()
    too_long = svc.records.list_pending(iso_before(moment, PENDING_TOO_LONG_SECONDS), PENDING_TOO_LONG_COUNTED)
    lost = [] if waiting else svc.records.list_pending(moment, redrive_limit(svc))
    svc.queue.send([redrive_body(key) for key in lost])
    return {"queued": waiting, "redriven": len(lost), "pendingTooLong": len(too_long)}
