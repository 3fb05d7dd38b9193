"""The indexing queue on AWS: the bucket's events as the queue holds them
(S3 sends its ObjectCreated and ObjectRemoved events there: `make
aws-setup`), what an indexing worker does with a batch of them, and what
the scheduled re-drive puts back. app.py's SQS handler and the simulation
(chalicelib/ops/aws_volume.py) both run this code.

A worker handles the messages of its batch one by one:

- ObjectCreated indexes that version (indexing.index_queued_photo), each
  IndexFaces on its turn of the stage's schedule (core/pacing.py);
  ObjectRemoved drops the faces and records of a photo the bucket no longer
  holds (indexing.remove_photo), each DeleteFaces on its turn; S3's test
  event is nothing to do.
- The batch is held while the worker works on it: a heartbeat extends its
  messages' visibility every HEARTBEAT_SECONDS to HOLD_SECONDS, so a worker
  that dies (out of memory, a crash, Lambda's timeout) gives them back
  within HOLD_SECONDS, however long a call may take; and each message is
  deleted as soon as it is done, so what comes back is only what was not.
- A message received again after its worker died may be the one that
  killed it: the photo's record shows an attempt begun and never ended.
  Such a suspect is handled last, after the rest of its batch, and only one
  a batch (the others go back as new messages, not counted), so a photo that
  kills its worker never takes a batch-mate down twice and no batch-mate
  reaches the dead-letter queue. On its MAX_RECEIVES-th receive a suspect
  is not tried again: its photo ends `failed` ("it stopped its worker").
- A throttle (a service refused a call for its rate quota, after
  botocore's retries) is back-pressure: the pace is cut, and the worker
  tries the message again after a pause, uncounted.
- A service's failure (5xx, a timeout) counts against the photo only while
  other photos succeed; when the service fails for every photo, the
  circuit breaker opens (core/pacing.py): the workers wait, and what they
  cannot wait for goes back to the queue as new messages, never counted.
- Any other failure gives the message back to the queue, seen again after
  a backoff; that counts a receive. On its MAX_RECEIVES-th receive the
  photo is recorded `failed` with the reason, and SQS moves the message to
  the dead-letter queue at its next receive (the queue's redrive policy).
  Chalice reports no partial batch failures: the worker deletes what it is
  done with itself, then raises, so that Lambda gives back only the failed.
- A message is started only while RESERVE_SECONDS of the invocation are
  left (one call's worst case, botocore's attempts each waiting to their
  timeout); the rest are sent again, not counted, rather than cut off by
  Lambda's timeout.

The re-drive (every REDRIVE_EVERY_SECONDS) sends again the records it
owes a visit (records.redrive_due: photos pending for minutes since their
upload or last attempt, attempts under way once surely over, work a crash
left after a commit), whose event is gone: only when no message waits in
the queue, since until then every event may still be there and a photo
pending in a backlog is not lost. Messages in flight or delayed (being
worked on, backing off) do not hold it back: their photos' records are not
due (an attempt moves its record's due time). It reads the due records a
page at a time, the longest due first, only when it sends some, and counts
the photos pending for over a day without reading them (a count of at most
PENDING_TOO_LONG_COUNTED). Those are stuck only when the queue is not
draining at the stage's pace: a long import at the quota's pace is
healthy, however long. S3 delivers an event in seconds, sometimes a minute
or more, and SQS's counts may lag a minute: a photo pending for minutes
with nothing waiting in the queue has no event coming (one that still
comes finds it indexed)."""

import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from chalicelib.core import indexing, logs
from chalicelib.core.config import worst_call_seconds
from chalicelib.core.errors import FaceprintError, Throttled
from chalicelib.core.pacing import BREAKER, NoTurn, is_service_failure, turns_until
from chalicelib.core.ports import IndexQueue, PhotoVersion, QueuedMessage
from chalicelib.core.records import PENDING, iso_before, normalize_sequencer
from chalicelib.core.services import Services

log = logging.getLogger("faceprint")

# The queue's redrive policy (make aws-setup): a message received this many
# times goes to the dead-letter queue at its next receive. (AWS advises at
# least 5 for a Lambda event source.)
MAX_RECEIVES = 5
# Messages per invocation (the event source's batch size; 10 at most
# without a batching window).
BATCH_SIZE = 10
# A message starts only with this much of the invocation left: the worst
# case of one AWS call (each of botocore's attempts waiting to its timeout,
# about 107 s), and a margin for the message's other, quick calls.
RESERVE_SECONDS = math.ceil(worst_call_seconds()) + 13
# The heartbeat: every HEARTBEAT_SECONDS the messages still held are made
# invisible for HOLD_SECONDS more.
HEARTBEAT_SECONDS = 10
HOLD_SECONDS = 30
# A failed message is seen again after RETRY_SECONDS x 2^(receives - 1); a
# throttled call is tried again after THROTTLE_PAUSE_SECONDS (and its turn).
RETRY_SECONDS = 30
THROTTLE_PAUSE_SECONDS = (1.0, 3.0)
SQS_MAX_DELAY_SECONDS = 900
REDRIVE_EVERY_SECONDS = 60
# Photos due for a visit for longer than this are counted (up to
# PENDING_TOO_LONG_COUNTED); they are stuck (the alarm) unless the queue
# drains at least DRAINING_SHARE of what it could since the last run.
PENDING_TOO_LONG_SECONDS = 24 * 3600
PENDING_TOO_LONG_COUNTED = 1000
DRAINING_SHARE = 0.5
DRAIN = "drain"  # the re-drive's last look at the workers' progress (SharedState)
# The collection's alarm: fewer faces left than this share of its limit.
COLLECTION_NEARLY_FULL = 0.05
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
SUSPECT = "faceprintSuspect"  # a message sent back that may be one that kills its worker
STOPPED_WORKER = (
    "Indexing stopped its worker {times} times (out of memory, a crash or a timeout): "
    "the photo is left out; put it again once fixed."
)


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


def resent_body(body: str, suspect: bool = False) -> str:
    """A message sent back to the queue: the same events, but a re-drive's
    no longer counts as one (it was counted when first received); a
    `suspect` one says so (it may kill its worker: handled alone)."""
    try:
        message = json.loads(body)
    except ValueError:
        return body
    if not isinstance(message, dict):
        return body
    changed = suspect != bool(message.pop(SUSPECT, False))
    if suspect:
        message[SUSPECT] = True
    for record in message.get("Records", []):
        if isinstance(record, dict) and record.get("eventSource") == REDRIVE_SOURCE:
            record["eventSource"], changed = RESENT_SOURCE, True
    return json.dumps(message) if changed else body


class Heartbeat:
    """Holds a batch's messages while its worker may still work on them
    (see the module's docstring): a thread that makes those not yet
    released invisible for `hold` more seconds every `every` seconds. Used
    as a context manager around the batch."""

    def __init__(self, queue: IndexQueue, receipts: list[str], every: float = HEARTBEAT_SECONDS, hold=HOLD_SECONDS):
        self._queue, self._every, self._hold = queue, every, hold
        self._held = list(receipts)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._queue.retry_after(self._held, self._hold)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def release(self, receipt: str) -> None:
        """Done with this message (deleted, or given back after a failure)."""
        with self._lock:
            if receipt in self._held:
                self._held.remove(receipt)

    def _beat(self) -> None:
        while not self._stop.wait(self._every):
            with self._lock:
                held = list(self._held)
            if not held:
                continue
            try:
                self._queue.retry_after(held, self._hold)
            except Exception:  # the next beat tries again; a batch let go is only received again
                log.warning("could not hold %d message(s) longer", len(held), exc_info=True)


@dataclass
class _Batch:
    """What a worker did with its batch."""

    done: int = 0
    failed: int = 0
    errors: list[str] | None = None
    later: list[QueuedMessage] | None = None
    delay: float = 0.0
    throttles: int = 0
    outage: bool = False


def handle_batch(
    svc: Services,
    messages: list[QueuedMessage],
    seconds_left: Callable[[], float],
    rng: random.Random | None = None,
    hold: Callable[[IndexQueue, list[str]], Heartbeat] = Heartbeat,
) -> dict:
    """One worker invocation's batch (see the module's docstring). Returns
    what it did; raises BatchFailed when some messages failed."""
    rng = rng or random.Random()
    pacing = svc.pacing
    clock = pacing.clock if pacing else time.time
    sleep = pacing.sleep if pacing else time.sleep
    batch = _Batch(errors=[], later=[])
    noted: set[str] = set()  # the re-drives counted (once a message, however often it is tried)
    # Held from the first moment: a worker that dies before it holds them
    # would leave the batch invisible for the queue's whole visibility timeout.
    with hold(svc.queue, [message.receipt for message in messages]) as holder:
        work, suspects = _in_order(svc, messages)
        spare = [message for message in suspects if message not in work]  # the suspects but one
        for message in spare:
            holder.release(message.receipt)
        _send_again(svc, spare, suspects, 0)
        waiting = deque(work)
        while waiting:
            message = waiting[0]
            left = seconds_left()
            if left < RESERVE_SECONDS:
                break
            latest = clock() + left - RESERVE_SECONDS
            if pacing is not None:
                closed_in = pacing.breaker.wait_closed(latest)
                if closed_in:
                    batch.delay, batch.outage = closed_in, True
                    break
            try:
                with turns_until(latest):
                    _handle(svc, message, noted)
            except NoTurn:
                break
            except Throttled as e:
                batch.throttles += 1
                log.info("throttled (%s): trying again after a pause", e.message)
                sleep(rng.uniform(*THROTTLE_PAUSE_SECONDS))
                continue
            except Exception as e:  # the message goes back to the queue (bounded by MAX_RECEIVES), unless...
                key = _key_of(message)
                if is_service_failure(e) and pacing is not None and not pacing.breaker.failed(key, svc.engine.probe):
                    sleep(rng.uniform(*THROTTLE_PAUSE_SECONDS))
                    continue  # ... the service fails for every photo: the breaker is open, nothing counted
                holder.release(message.receipt)
                _failed(svc, message, e, batch)
            else:
                holder.release(message.receipt)
                svc.queue.delete([message.receipt])
                batch.done += 1
                if pacing is not None:
                    pacing.breaker.succeeded(_key_of(message))
            waiting.popleft()
        batch.later = list(waiting)
        delay = min(SQS_MAX_DELAY_SECONDS, math.ceil(batch.delay + rng.uniform(0, 5))) if batch.delay else 0
        _send_again(svc, batch.later, suspects, delay)
    batch.later += spare
    if pacing is not None:
        pacing.breaker.flush()
    summary = {
        "messages": len(messages),
        "done": batch.done,
        "sentAgain": len(batch.later),
        "throttled": batch.throttles,
        "breakerOpen": batch.outage,
        "failed": batch.failed,
        "errors": batch.errors,
    }
    if batch.failed:
        raise BatchFailed(summary)
    return summary


def _send_again(svc: Services, messages: list[QueuedMessage], suspects: list[QueuedMessage], delay: int) -> None:
    """Messages sent back as new ones (so not counted), then the originals deleted."""
    if messages:
        svc.queue.send([resent_body(m.body, suspect=m in suspects) for m in messages], delay_seconds=delay)
        svc.queue.delete([message.receipt for message in messages])


def _in_order(svc: Services, messages: list[QueuedMessage]) -> tuple[list[QueuedMessage], list[QueuedMessage]]:
    """The messages to handle, in order, and the suspects among the batch.
    A message received again (or sent back as a suspect) whose photo's
    record shows an attempt begun and never ended may be the one that
    killed the worker it was with: such suspects go last, one at most."""
    fresh, suspects = [], []
    for message in messages:
        again = message.receive_count > 1 or SUSPECT in message.body
        (suspects if again and _attempt_left_over(svc, message) else fresh).append(message)
    return fresh + suspects[:1], suspects


def _attempt_left_over(svc: Services, message: QueuedMessage) -> bool:
    try:
        events = decode(message.body)
    except ValueError:
        return False
    for event in events:
        if event.kind == CREATED:
            record = svc.records.get_image(event.key)
            if record is not None and record["status"] == PENDING and record.get("running"):
                return True
    return False


def _failed(svc: Services, message: QueuedMessage, error: Exception, batch: _Batch) -> None:
    """A failure that counts: back to the queue after a backoff (that is a
    receive); on the last receive, the photo ends `failed`."""
    reason = error.message if isinstance(error, FaceprintError) else f"unexpected {type(error).__name__} (see the log)"
    log.warning(  # its kind only: a message names the photo
        "message failed (receive %d of %d): %s",
        message.receive_count,
        MAX_RECEIVES,
        logs.error_kind(error),
        exc_info=not isinstance(error, FaceprintError),
    )
    backoff = RETRY_SECONDS * 2 ** (min(message.receive_count, 8) - 1)
    if isinstance(error, _GaveUp):
        backoff = 0  # its photo is recorded failed: the dead-letter queue takes it at once
    elif message.receive_count >= MAX_RECEIVES:
        _give_up(svc, message, reason)
    svc.queue.retry_after([message.receipt], backoff)
    batch.failed += 1
    batch.errors.append(reason)


class _GaveUp(Exception):
    """A suspect's last receive: its photo is recorded failed untried."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _handle(svc: Services, message: QueuedMessage, noted: set[str]) -> None:
    events = decode(message.body)
    if message.receive_count >= MAX_RECEIVES:
        _stop_if_it_kills_workers(svc, message, events)
    for event in events:
        if event.kind == REMOVED:
            indexing.remove_photo(svc, event.key)
        elif not event.redriven or message.receive_count > 1 or message.receipt in noted:
            indexing.index_queued_photo(svc, event.key, event.version)
        elif indexing.note_redrive(svc, event.key):
            noted.add(message.receipt)
            indexing.index_queued_photo(svc, event.key, event.version)


def _stop_if_it_kills_workers(svc: Services, message: QueuedMessage, events: list[PhotoEvent]) -> None:
    """A message on its last receive whose photo's last attempt never ended
    (its worker died) is not tried again: its photo ends `failed`, and the
    dead-letter queue takes the message."""
    for event in events:
        if event.kind != CREATED:
            continue
        record = svc.records.get_image(event.key)
        if record is None or record["status"] != PENDING or not record.get("running"):
            continue
        reason = STOPPED_WORKER.format(times=message.receive_count - 1)
        indexing.record_failure(svc, event.key, event.version, reason)
        raise _GaveUp(reason)


def _key_of(message: QueuedMessage) -> str:
    try:
        events = decode(message.body)
    except ValueError:
        return message.receipt
    return events[0].key if events else message.receipt


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
    """The scheduled re-drive: when no message waits in the queue, send
    again the records the re-drive owes a visit (their events were lost: S3
    did not deliver one, the queue expired it, or it was dead-lettered
    without a recorded failure; or a crash left work after a commit). Also
    counts the photos due for over PENDING_TOO_LONG_SECONDS, whatever the
    queue holds, and those of them that are stuck (the queue not draining
    at the stage's pace), for the alarm; how many hours of work the queue
    holds at that pace; and how many more faces the collection takes (its
    own alarm)."""
    moment = moment or svc.clock()
    depth = svc.queue.depth()
    too_long = svc.records.count_pending(iso_before(moment, PENDING_TOO_LONG_SECONDS), PENDING_TOO_LONG_COUNTED)
    lost = [] if depth.waiting else svc.records.list_pending(moment, redrive_limit(svc))
    svc.queue.send([redrive_body(key) for key in lost])
    draining = _draining(svc, depth.total)
    room = svc.engine.room_left()
    if svc.pacing is not None:
        svc.pacing.note_room(room)  # uploads are refused while it has none
    return {
        "waiting": depth.waiting,
        "inFlight": depth.in_flight,
        "delayed": depth.delayed,
        "redriven": len(lost),
        "pendingTooLong": too_long,
        "stuck": 0 if draining else too_long,
        "hoursLeft": round(depth.total / svc.settings.index_tps / 3600, 2),
        "collectionRoom": room,
    }


def _draining(svc: Services, queued: int) -> bool:
    """Whether the workers did at least DRAINING_SHARE of what the queue
    allowed since the last run (the stage's pace, or what it held): the
    breaker's count of messages done, against the re-drive's last look."""
    if svc.pacing is None:
        return False
    state, now = svc.pacing.state, svc.pacing.clock()
    done = state.read(BREAKER).get("done", 0)
    last = state.read(DRAIN)
    state.update(DRAIN, {"at": now, "done": done})
    if "at" not in last:
        return True  # the first look: nothing to compare with yet
    seconds = max(1.0, now - last["at"])
    possible = min(svc.settings.index_tps * seconds, queued + (done - last.get("done", 0)))
    return done - last.get("done", 0) >= DRAINING_SHARE * possible
