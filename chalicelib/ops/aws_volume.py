"""A discrete-event simulation of a Faceprint AWS stage at volume: photos
uploaded (or deleted) at once or at a rate, indexed through the queue by
the project's own code (indexing.py, index_queue.py, pacing.py: the very
functions app.py's handlers call) over the in-memory fakes, on a virtual
clock. What stands in for AWS models its documented behaviour:

- S3 -> SQS: each stored or deleted photo sends one event to the queue "at
  least once" (duplicates injected), "typically in seconds but sometimes a
  minute or longer" (S3 User Guide, "Amazon S3 Event Notifications");
  a few are lost (injected), which the re-drive must catch. A delete in a
  versioned bucket leaves a delete marker and sends
  ObjectRemoved:DeleteMarkerCreated.
- SQS standard queue: a received message is invisible for the visibility
  timeout (or what ChangeMessageVisibility set), then received again; each
  receive counts (ApproximateReceiveCount) and a message received more
  than maxReceiveCount times goes to the dead-letter queue instead (SQS
  Developer Guide, "Using dead-letter queues"); a message sent again is a
  new message, whose count starts from none; DelaySeconds delays a new
  message; the approximate counts (visible, not visible, delayed) lag up to
  a minute ("may not achieve consistency until at least 1 minute after the
  producers stop sending").
- Lambda's SQS event source: batches of up to BATCH_SIZE messages, at most
  `maximum concurrency` invocations at once, starting with 5 and adding up
  to 300 a minute; a batch whose invocation succeeds is deleted; when the
  function returns an error, or dies, or times out, its messages stay in
  the queue and come back when their visibility ends: Chalice 1.34 reports
  no partial batch failures (Lambda Developer Guide, "Using Lambda with
  Amazon SQS", "Handling errors for an SQS event source", "Configuring
  scaling behavior for SQS event source mappings"); idle pollers long-poll
  (20 s). Execution environments are reused while warm (their module
  state outlives an invocation), a new one pays a cold start, an invocation
  past the function's timeout is killed, some crash at random and a photo
  may kill every worker that indexes it (out of memory): injected.
- Rekognition: each operation's quota (IndexFaces, DeleteFaces,
  SearchFacesByImage) a token bucket of the account, shared by every stage
  (a rate, and a burst AWS does not publish: a second's worth, or
  `burst_calls`), ThrottlingException when empty ("Amazon Rekognition is
  temporarily unable to process the request": Rekognition API reference,
  common errors), a few 5xx (injected), outages (every call for hours
  failing with a 5xx, throttled, or hanging until the client's read
  timeout), and ServiceQuotaExceededException once the collection holds
  its most faces ("The size of the collection exceeds the allowed limit").
  botocore's standard retry mode is on top of each worker's client, with
  botocore's own retry quota and backoff classes (botocore/retries/
  standard.py), MAX_ATTEMPTS attempts in all (chalicelib/aws/clients.py),
  a read timeout counted as a retryable failure, and the adapter's
  translation of the error (chalicelib/aws/clients.py).
- DynamoDB: the records (the in-memory record store) with their request
  units as chalicelib/aws/dynamodb.py spends them, and the stage's shared
  items (core/pacing.py) as chalicelib/aws/state.py writes them: one
  conditional UpdateItem a turn.
- Latencies (assumed, not published by AWS): IndexFaces about 0.5 s
  (lognormal, or `index_seconds`), DeleteFaces 0.1 s, SearchFacesByImage
  0.3 s, DetectFaces 0.2 s, DynamoDB 5 ms, S3 15-40 ms, SQS 10 ms, a cold
  start 0.8 s. Requests reach the service when sent (network jitter within
  a region, milliseconds, is not modelled).

Prices (us-east-1, list prices as published in 2025; not verified here):
Rekognition IndexFaces $1.00 per 1,000 images (first million a month) and
face storage $0.01 per 1,000 faces a month; Lambda $0.20 per million
requests and $0.0000166667 per GB-second (x86); SQS $0.40 per million
requests (standard); DynamoDB on-demand $0.625 per million write and $0.125
per million read request units; S3 $0.005 per 1,000 PUTs and $0.0004 per
1,000 GETs and HEADs.

Each simulated process (an upload, an invocation, a poller, a re-drive run)
is a greenlet; a call to a simulated service sleeps its latency on the
virtual clock, so the project's synchronous code runs unchanged, one step
at a time, in an order the seed decides."""

import bisect
import heapq
import itertools
import json
import logging
import math
import random
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import quote_plus

import greenlet
from botocore.exceptions import ClientError, ReadTimeoutError
from botocore.retries import quota as botocore_quota
from botocore.retries import standard as botocore_retries

from chalicelib.aws import clients as aws
from chalicelib.core import index_queue, indexing, library
from chalicelib.core.config import Settings
from chalicelib.core.errors import COLLECTION_FULL, CollectionFull, FaceprintError
from chalicelib.core.index_queue import BatchFailed
from chalicelib.core.naming import StrangerModel
from chalicelib.core.pacing import InMemoryState, PacedEngine, Pacing
from chalicelib.core.ports import (
    Committed,
    FaceEngine,
    FaceKey,
    ImageState,
    IndexQueue,
    ListedPhoto,
    Page,
    PhotoStore,
    PhotoVersion,
    QueueDepth,
    QueuedMessage,
    StoredPhoto,
)
from chalicelib.core.records import FAILED, FINAL, next_revision, redrive_due
from chalicelib.core.services import Services
from chalicelib.ops.memory import FakeEngine, InMemoryPhotoStore, InMemoryRecordStore, photo_of

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
EPOCH_SECONDS = EPOCH.timestamp()

# Prices (see the module's docstring).
PRICE_INDEX_FACES = 0.001
PRICE_FACE_MONTH = 0.00001
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_LAMBDA_GB_SECOND = 0.0000166667
PRICE_SQS_REQUEST = 0.40 / 1e6
PRICE_WRITE_UNIT = 0.625 / 1e6
PRICE_READ_UNIT = 0.125 / 1e6
PRICE_S3_PUT = 0.005 / 1000
PRICE_S3_GET = 0.0004 / 1000

# Lambda's SQS event source (see the module's docstring).
FIRST_POLLERS = 5
POLLERS_PER_MINUTE = 300
LONG_POLL_SECONDS = 20
ENVIRONMENT_IDLE_SECONDS = 600  # a warm environment unused this long is reclaimed (not published)
SQS_COUNT_LAG_SECONDS = 60
UPLOADERS = 64  # uploads at a time, for photos "uploaded all at once"
SAMPLE_SECONDS = 10  # how often the queue's counts are taken (what GetQueueAttributes gives, a minute later)
DUE_INDEX_ITEM_BYTES = 100  # a KEYS_ONLY item of the `due` index: key, shard, time
READ_TIMEOUT = 20.0  # botocore's read timeout (chalicelib/aws/clients.py)
LATENCY = {"DeleteFaces": 0.1, "SearchFacesByImage": 0.3, "DetectFaces": 0.2}


@dataclass(frozen=True)
class Outage:
    """Rekognition failing every call from `start` (seconds into the run)
    for `hours`: with a 5xx (InternalServerError), throttled
    (ThrottlingException), or hanging until the client's read timeout."""

    hours: float
    kind: str = "5xx"  # "5xx", "throttle" or "hang"
    start: float = 0.0

    def covers(self, moment: float) -> bool:
        return self.start <= moment < self.start + self.hours * 3600


@dataclass
class Faults:
    """What goes wrong, and how often."""

    duplicate_events: float = 0.01  # S3 delivers an event twice
    lost_events: float = 0.001  # S3 never delivers an event
    late_events: float = 0.005  # an event takes 10 s to 2 minutes
    index_errors: float = 0.005  # an IndexFaces attempt fails with a 5xx
    crashes: float = 0.001  # an invocation dies (out of memory, runtime error) at a random point
    poison: frozenset[str] = frozenset()  # keys whose IndexFaces always fails (a 5xx)
    crashing: frozenset[str] = frozenset()  # keys whose indexing kills the worker (out of memory)
    outage: Outage | None = None


NO_FAULTS = Faults(0, 0, 0, 0, 0)


@dataclass
class Scenario:
    photos: int
    tps: float  # the stage's FACEPRINT_INDEX_TPS
    quota: float | None = None  # the account's IndexFaces quota; default: tps
    upload_rate: float = 0.0  # photos a second; 0: all at once
    seed: int = 1
    faults: Faults = field(default_factory=Faults)
    index_seconds: float = 0.5  # IndexFaces' median latency
    burst_seconds: float = 1.0  # how many seconds of the quota Rekognition's buckets hold ...
    burst_calls: int | None = None  # ... or how many calls
    worker_timeout: int = 300
    worker_memory_mb: int = 256
    redrive_memory_mb: int = 256
    delete_tps: float = 5.0  # the stage's FACEPRINT_DELETE_TPS, and the account's DeleteFaces quota
    collection_limit: int | None = None  # the most faces the collection holds (Rekognition's quota)
    name: str = ""


class Killed(BaseException):
    """Lambda ended the invocation (its timeout, or a crash): not an
    exception the function's code can catch."""


# ---------------------------------------------------------------------------
# Virtual time and processes.


class Simulator:
    def __init__(self, seed: int) -> None:
        self.now = 0.0
        self.rng = random.Random(seed)
        self._heap: list = []
        self._order = itertools.count()
        self._main = greenlet.getcurrent()

    def at(self, moment: float, action: Callable[[], object]) -> None:
        heapq.heappush(self._heap, (moment, next(self._order), action))

    def after(self, seconds: float, action: Callable[[], object]) -> None:
        self.at(self.now + max(0.0, seconds), action)

    def spawn(self, run: Callable[[], object], delay: float = 0.0) -> greenlet.greenlet:
        process = greenlet.greenlet(run, parent=self._main)
        self.after(delay, lambda: _resume(process))
        return process

    def sleep(self, seconds: float) -> None:
        process = greenlet.getcurrent()
        if process is self._main:
            raise RuntimeError("only a simulated process can sleep")
        self.after(seconds, lambda: _resume(process))
        self._main.switch()

    def park(self, waiter: "Waiter", timeout: float | None = None) -> None:
        """Sleep until `waiter` is woken (or `timeout` seconds pass)."""
        if timeout is not None:
            self.after(timeout, waiter.wake)
        if not waiter.woken:
            self._main.switch()

    def run(self, until: Callable[[], bool], horizon: float, check_every: float = 10.0) -> None:
        next_check = check_every
        while self._heap:
            moment, _, action = heapq.heappop(self._heap)
            if moment > horizon:
                self.now = horizon
                return
            self.now = moment
            action()
            if moment >= next_check:
                next_check = moment + check_every
                if until():
                    return

    def iso(self, seconds: float | None = None) -> str:
        return (EPOCH + timedelta(seconds=self.now if seconds is None else seconds)).isoformat(timespec="milliseconds")

    def epoch(self) -> float:
        """The virtual time as the shared schedules see it (seconds since the epoch)."""
        return EPOCH_SECONDS + self.now


class Waiter:
    """Wakes the process that made it, once."""

    def __init__(self, sim: Simulator) -> None:
        self._sim, self._process, self.woken = sim, greenlet.getcurrent(), False

    def wake(self) -> None:
        if not self.woken:
            self.woken = True
            self._sim.after(0, lambda: _resume(self._process))


def _resume(process: greenlet.greenlet) -> None:
    if not process.dead:
        process.switch()


# ---------------------------------------------------------------------------
# The services.


@dataclass
class Counts:
    index_calls: int = 0  # every IndexFaces attempt, throttled or not
    index_billed: int = 0  # the ones that indexed
    throttled: int = 0
    index_errors: int = 0
    timeouts: int = 0
    delete_calls: int = 0
    delete_throttled: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    state_calls: int = 0
    s3_puts: int = 0
    s3_gets: int = 0  # HEADs, and Rekognition reading the photo
    sqs_requests: int = 0
    invocations: int = 0
    failed_invocations: int = 0
    killed_invocations: int = 0
    killed_before_holding: int = 0  # died before its handler held the batch (a cold start)
    cold_starts: int = 0
    gb_seconds: float = 0.0
    redrive_runs: int = 0
    redriven: int = 0
    redrive_read_units_max: float = 0.0  # in one run
    redrive_keys_max: int = 0  # held at once by one run
    redrive_backlog_max: int = 0  # the queue's depth one run saw, at most
    stuck_runs: int = 0  # re-drive runs that counted stuck photos (the alarm's metric above 0)
    nearly_full_runs: int = 0  # re-drive runs that found the collection nearly full (its alarm)
    pending_too_long_max: int = 0
    events_sent: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    peak_concurrency: int = 0
    throttled_batches: int = 0
    breaker_waits: int = 0
    api_deletes: int = 0
    api_delete_busy: int = 0  # DELETE /images answered 503 (its DeleteFaces had no turn): the event finishes it


class TokenBucket:
    """A rate quota: `rate` tokens a second, at most `capacity` saved up."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.at = capacity, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        # A call 1/rate after the last finds its token, however the times
        # round (seconds since the epoch, as floats: to a microsecond or so).
        if self.tokens < 1 - 1e-4:
            return False
        self.tokens = max(0.0, self.tokens - 1)
        return True


class _Detector:
    """What botocore's retry classes ask: was this a throttle?"""

    def is_throttling_error_from_context(self, context) -> bool:
        return context.throttled


@dataclass
class Account:
    """What the stages of one account and region share: Rekognition's
    quotas and outages, and the collection's limit."""

    sim: Simulator
    counts: Counts
    index: TokenBucket
    delete: TokenBucket
    search: TokenBucket
    outage: Outage | None = None
    index_errors: float = 0.0
    poison: frozenset[str] = frozenset()
    crashing: frozenset[str] = frozenset()
    collection_limit: int | None = None
    detect: TokenBucket = field(default_factory=lambda: TokenBucket(50, 50))  # DetectFaces (the breaker's probe)


def bucket_of(rate: float, burst_seconds: float, burst_calls: int | None) -> TokenBucket:
    return TokenBucket(rate, burst_calls if burst_calls else max(1.0, rate * burst_seconds))


class SimRekognition(FaceEngine):
    """One worker's Rekognition client: each call against its operation's
    token bucket of the account, through botocore's standard retries with
    this client's own retry quota; outages and a full collection as the
    service answers them; the rest goes straight to the fake."""

    def __init__(self, account: Account, engine: FakeEngine, index_seconds: float, on_index: Callable[[str], None]):
        self._account, self._engine, self._index_seconds, self._on_index = account, engine, index_seconds, on_index
        self._sim = account.sim
        detector = _Detector()
        self._quota = botocore_retries.RetryQuotaChecker(botocore_quota.RetryQuota(), detector)
        self._backoff = botocore_retries.ExponentialBackoff(
            random=self._sim.rng.random, service_name="rekognition", throttling_detector=detector
        )
        # Its paced calls' client makes one attempt: the pacing retries (chalicelib/aws/clients.py);
        # the others botocore retries.
        self._attempts = aws.config_for("rekognition", paced=True).retries["total_max_attempts"]
        self._botocore_attempts = aws.config_for("rekognition").retries["total_max_attempts"]

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        account, counts = self._account, self._account.counts

        def attempt() -> str | None:
            counts.index_calls += 1
            self._sim.sleep(self._sim.rng.lognormvariate(math.log(self._index_seconds), 0.4))
            counts.s3_gets += 1
            if photo.key in account.poison or self._sim.rng.random() < account.index_errors:
                counts.index_errors += 1
                return "InternalServerError"
            self._on_index(photo.key)  # a photo that kills its worker does it here
            return None

        def failure_counted(code: str) -> None:
            if code == "ThrottlingException":
                counts.throttled += 1

        self._call("IndexFaces", account.index, attempt, failure_counted)
        limit = account.collection_limit
        if (
            limit is not None and len(self._engine.faces) >= limit
        ):  # ServiceQuotaExceededException, as the adapter says it
            raise CollectionFull(COLLECTION_FULL.format(limit="Rekognition's quota for collection 'sim'"))
        result = self._engine.index_faces(photo, external_image_id)  # NotFound: a version gone
        counts.index_billed += 1
        return result

    def delete_faces(self, face_ids: list[str]) -> None:
        counts = self._account.counts

        def attempt() -> str | None:
            counts.delete_calls += 1
            self._sim.sleep(LATENCY["DeleteFaces"])
            return None

        def failure_counted(code: str) -> None:
            if code == "ThrottlingException":
                counts.delete_throttled += 1

        self._call("DeleteFaces", self._account.delete, attempt, failure_counted)
        self._engine.delete_faces(face_ids)

    def search(self, pacing: Pacing | None) -> str:
        """One SearchFacesByImage as the adapter makes it (its turn on the
        stage's search budget first): the code of its failure, or ''."""

        def attempt() -> None:
            self._sim.sleep(LATENCY[SEARCH])

        try:
            if pacing is None:  # the client as it was, botocore's retries and no budget
                self._call(SEARCH, self._account.search, attempt, attempts=self._botocore_attempts)
            else:
                pacing.search_call(lambda: self._call(SEARCH, self._account.search, attempt))
        except FaceprintError as e:
            return e.code
        return ""

    def _call(
        self, operation: str, bucket: TokenBucket, attempt, failure_counted=lambda code: None, attempts: int = 0
    ) -> None:
        """An API call with botocore's standard retries: `attempt` makes one
        (its latency; None when it worked, else an error code) once the
        bucket and any outage let it through."""
        sim, outage = self._sim, self._account.outage
        request: dict = {}
        for number in itertools.count(1):
            timed_out = False
            if outage is not None and outage.covers(sim.now):
                code = {"5xx": "InternalServerError", "throttle": "ThrottlingException", "hang": "timeout"}[outage.kind]
                if code == "timeout":
                    sim.sleep(READ_TIMEOUT)
                    self._account.counts.timeouts += 1
                    timed_out = True
                else:
                    sim.sleep(0.05)
            elif not bucket.take(sim.now):
                code = "ThrottlingException"
                sim.sleep(0.05)
            else:
                code = attempt()
                if code is None:
                    self._quota.release_retry_quota(request, SimpleNamespace(status_code=200))
                    return
            if code != "timeout":
                failure_counted(code)
            context = SimpleNamespace(
                attempt_number=number,
                throttled=code == "ThrottlingException",
                http_response=None,
                request_context=request,
                add_retry_metadata=lambda **_: None,
            )
            if number >= (attempts or self._attempts) or not self._quota.acquire_retry_quota(context):
                with aws.translated("the simulated collection", "sim"):
                    if timed_out:
                        raise ReadTimeoutError(endpoint_url=f"https://rekognition/{operation}")
                    raise ClientError({"Error": {"Code": code, "Message": code}}, operation)
            sim.sleep(self._backoff.delay_amount(context))
        raise AssertionError("unreachable")

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        return self._engine.search_faces_by_image(data, threshold, max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        return self._engine.search_all_faces_by_image(data, threshold, max_faces)

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        return self._engine.list_faces(limit, token)

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        return self._engine.list_face_ids(limit, token)

    def describe(self) -> dict:
        return self._engine.describe()

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        return self._engine.get_faces(face_ids)

    def face_count(self) -> int:
        return len(self._engine.faces)

    def probe(self, key: str) -> bool | None:
        """DetectFaces on a stored photo (the breaker's probe), with botocore's retries."""
        try:
            self._call(
                "DetectFaces",
                self._account.detect,
                lambda: self._sim.sleep(LATENCY["DetectFaces"]),
                attempts=self._botocore_attempts,
            )
        except FaceprintError:
            return False
        return True

    def room_left(self) -> int | None:
        limit = self._account.collection_limit
        return None if limit is None else limit - len(self._engine.faces)

    def stranger_model(self) -> StrangerModel:
        return self._engine.stranger_model()


SEARCH = "SearchFacesByImage"


class DueIndex:
    """The `due` index of the records (chalicelib/aws/dynamodb.py), as the
    simulation keeps it: due times grouped by the minute, in order."""

    def __init__(self) -> None:
        self.due: dict[str, str] = {}
        self._minutes: list[str] = []
        self._keys: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self.due)

    def set(self, key: str, due: str | None) -> None:
        old = self.due.pop(key, None)
        if old is not None:
            self._keys[old[:16]].discard(key)
        if due is None:
            return
        self.due[key] = due
        minute = due[:16]
        if minute not in self._keys:
            self._keys[minute] = set()
            bisect.insort(self._minutes, minute)
        self._keys[minute].add(key)

    def earliest(self, older_than: str, limit: int) -> list[str]:
        found: list[str] = []
        for minute in self._minutes:
            if minute > older_than[:16] or len(found) >= limit:
                break
            keys = sorted((self.due[k], k) for k in self._keys[minute] if self.due[k] < older_than)
            found += [k for _, k in keys[: limit - len(found)]]
        return found

    def count(self, older_than: str, most: int) -> int:
        counted = 0
        for minute in self._minutes:
            if minute > older_than[:16] or counted >= most:
                break
            keys = self._keys[minute]
            counted += len(keys) if minute < older_than[:16] else sum(self.due[k] < older_than for k in keys)
        return min(counted, most)


class SimRecords(InMemoryRecordStore):
    """The in-memory record store with the indexes a large archive needs
    (faces by image, the `due` index), DynamoDB's latency and its request
    units, as chalicelib/aws/dynamodb.py spends them (a record under 1 KB:
    1 unit a read or write; the sparse `due` index: 1 more a write that
    adds, moves or removes a due record; a Query: half a unit per 4 KB of
    index items read, eventually consistent)."""

    def __init__(self, sim: Simulator, counts: Counts, on_none_pending: Callable[[], None]) -> None:
        super().__init__()
        self._sim, self._counts, self._on_none_pending = sim, counts, on_none_pending
        self.index = DueIndex()

    @property
    def pending(self) -> dict[str, str]:
        return self.index.due

    def _call(self, reads: float = 0, writes: float = 0, trips: int = 1) -> None:
        self._counts.read_units += reads
        self._counts.write_units += writes
        self._sim.sleep(0.005 * trips)

    def get_image(self, key: str) -> dict | None:
        self._call(reads=1)
        image = self.images.get(key)
        return _copy(image) if image else None

    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        self._call(writes=1 + (redrive_due(image) is not None or image["key"] in self.index.due))
        return super().put_image(image, expected_revision)

    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int | None) -> Committed | None:
        self._call(writes=len(faces) + 2 + len(self.listed.get(image["key"], [])), trips=3)
        return super().commit_faces(image, faces, expected_revision)

    def remove_image(self, key: str, expected_revision: int | None = None) -> list[str] | None:
        self._call(writes=2 + len(self.listed.get(key, [])), trips=2)
        removed = super().remove_image(key, expected_revision)
        if removed is not None:
            self._unpend(key)
        return removed

    def faces_of(self, key: str) -> list[dict]:
        self._call(reads=1 + len(self.listed.get(key, [])), trips=2)
        return super().faces_of(key)

    def list_pending(self, older_than: str, limit: int) -> list[str]:
        found = self.index.earliest(older_than, limit)
        self._query(len(found))
        return found

    def count_pending(self, older_than: str, most: int) -> int:
        counted = self.index.count(older_than, most)
        self._query(counted)
        return counted

    def _query(self, items: int) -> None:
        """One Query a shard (4), a page (1 MB) at a time."""
        pages = 4 + items * DUE_INDEX_ITEM_BYTES // 1_000_000
        units = 4 * 0.5 + 0.5 * items * DUE_INDEX_ITEM_BYTES / 4096
        self._counts.read_units += units
        self._sim.sleep(0.01 * pages)
        self.last_query_units = units

    def delete_face(self, face_id: str) -> None:
        raise NotImplementedError("not used by indexing")

    def _write(self, image: dict, expected_revision: int | None) -> dict:
        """InMemoryRecordStore's, with a copy that knows records are plain
        JSON (copy.deepcopy was a third of the simulation's time)."""
        written = _copy({**image, "revision": next_revision(expected_revision)})
        self.images[image["key"]] = written
        self.listed.setdefault(image["key"], [])
        written = _copy(written)
        due = redrive_due(written)
        if due is not None:
            self.index.set(written["key"], due)
        else:
            self._unpend(written["key"])
        return written

    def _unpend(self, key: str) -> None:
        if key in self.index.due:
            self.index.set(key, None)
            if not self.index.due:
                self._on_none_pending()


def _copy(value):
    """A copy of a JSON-shaped value (dicts, lists, and what they hold)."""
    if isinstance(value, dict):
        return {name: _copy(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


class SimState(InMemoryState):
    """The stage's shared items (core/pacing.py) on DynamoDB: each call one
    request of 5 ms; a write (a turn, an update) one unit, a read half."""

    def __init__(self, sim: Simulator, counts: Counts) -> None:
        super().__init__()
        self._sim, self._counts = sim, counts

    def _request(self, writes: float = 0.0, reads: float = 0.0) -> None:
        self._counts.state_calls += 1
        self._counts.write_units += writes
        self._counts.read_units += reads
        self._sim.sleep(0.005)

    def reserve(self, name, now, step, latest):
        self._request(writes=1)
        return super().reserve(name, now, step, latest)

    def hold_until(self, name, until, values=None):
        self._request(writes=1)
        return super().hold_until(name, until, values)

    def read(self, name):
        self._request(reads=1)
        return super().read(name)

    def update(self, name, values=None, add=None, only_if=None):
        self._request(writes=1)
        return super().update(name, values, add, only_if)


class SimBucket(InMemoryPhotoStore):
    """The versioned bucket, as strict as S3 (chalicelib/ops/memory.py: a put's
    reply carries no sequencer), with S3's latency and requests; every
    notification it makes goes to the queue. `delete` is the API's (every
    version, ObjectRemoved:Delete each); `delete_current` is `aws s3 rm`'s (a
    delete marker, ObjectRemoved:DeleteMarkerCreated)."""

    def __init__(self, sim: Simulator, counts: Counts, notify: Callable[[dict], None]) -> None:
        super().__init__()
        self._sim, self._counts, self._notify = sim, counts, notify
        self.clock = sim.iso
        versions = itertools.count(1)
        self.new_id = lambda: f"v{next(versions)}"  # seeded runs replay exactly

    def put(self, key, data, content_type, metadata, original_content_type=""):
        self._sim.sleep(0.04)
        self._counts.s3_puts += 1
        stored = super().put(key, data, content_type, metadata, original_content_type)
        self._forward()
        return stored

    def head(self, key):
        self._sim.sleep(0.015)
        self._counts.s3_gets += 1
        return super().head(key)

    def delete(self, key: str) -> None:
        self._sim.sleep(0.03)
        self._counts.s3_puts += 1
        super().delete(key)
        self._forward()

    def delete_current(self, key: str) -> str:
        self._sim.sleep(0.03)
        self._counts.s3_puts += 1
        marker = super().delete_current(key)
        self._forward()
        return marker

    def _forward(self) -> None:
        """The fake's notifications, in S3's event shape, to the queue."""
        sent, self.events = self.events, []
        for event in sent:
            record = {"key": quote_plus(event["key"]), "versionId": event["versionId"], "sequencer": event["sequencer"]}
            record.update({name: event[name] for name in ("size", "eTag") if name in event})
            self._notify({"eventName": event["eventName"], "object": record})


# ---------------------------------------------------------------------------
# SQS.


@dataclass
class _Message:
    body: str
    receives: int = 0
    handle: int = 0  # the receipt of the latest receive
    visible_at: float = 0.0
    state: str = "waiting"  # waiting, in flight, delayed


class SimQueue:
    """A standard queue with a redrive policy (see the module's docstring)."""

    def __init__(self, sim: Simulator, counts: Counts, visibility: int, max_receives: int) -> None:
        self._sim, self._counts = sim, counts
        self.visibility, self.max_receives = visibility, max_receives
        self.messages: dict[int, _Message] = {}
        self.dead: list[str] = []
        self._ids = itertools.count(1)
        self._ready: deque[int] = deque()
        self._later: list[tuple[float, int, int]] = []  # (visible_at, id, handle)
        self._counted = {"waiting": 0, "in flight": 0, "delayed": 0}
        self._samples: deque[tuple[float, QueueDepth]] = deque([(0.0, QueueDepth())])
        self.pollers: list[Callable[[], None]] = []

    def send(self, body: str, delay: float = 0.0) -> None:
        message_id = next(self._ids)
        message = _Message(body, visible_at=self._sim.now + delay, state="delayed" if delay > 0 else "waiting")
        self.messages[message_id] = message
        self._counted[message.state] += 1
        if delay > 0:
            heapq.heappush(self._later, (self._sim.now + delay, message_id, 0))
            self._sim.at(self._sim.now + delay, self._wake)
        else:
            self._ready.append(message_id)
            self._wake()

    def receive(self, most: int) -> list[QueuedMessage]:
        self._release()
        got = []
        while self._ready and len(got) < most:
            message_id = self._ready.popleft()
            message = self.messages.get(message_id)
            if message is None or message.visible_at > self._sim.now:
                continue
            message.receives += 1
            if message.receives > self.max_receives:
                self._drop(message_id)
                self.dead.append(message.body)
                continue
            message.handle += 1
            message.visible_at = self._sim.now + self.visibility
            self._move(message, "in flight")
            heapq.heappush(self._later, (message.visible_at, message_id, message.handle))
            got.append(QueuedMessage(message.body, f"{message_id}:{message.handle}", message.receives))
        return got

    def delete(self, receipt: str) -> None:
        message_id, handle = map(int, receipt.split(":"))
        message = self.messages.get(message_id)
        if message is not None and message.handle == handle:
            self._drop(message_id)

    def retry_after(self, receipt: str, seconds: float) -> None:
        message_id, handle = map(int, receipt.split(":"))
        message = self.messages.get(message_id)
        if message is not None and message.handle == handle and message.state == "in flight":
            message.visible_at = self._sim.now + seconds
            heapq.heappush(self._later, (message.visible_at, message_id, handle))
            self._sim.at(message.visible_at, self._wake)

    def sample(self) -> None:
        """Take the counts (every SAMPLE_SECONDS), for depth() a minute later."""
        self._release()
        c = self._counted
        self._samples.append((self._sim.now, QueueDepth(c["waiting"], c["in flight"], c["delayed"])))

    def depth(self) -> QueueDepth:
        """What GetQueueAttributes says: the counts as they were a minute ago."""
        moment = self._sim.now - SQS_COUNT_LAG_SECONDS
        while len(self._samples) > 1 and self._samples[1][0] <= moment:
            self._samples.popleft()
        return self._samples[0][1]

    @property
    def size(self) -> int:
        return len(self.messages)

    def _move(self, message: _Message, state: str) -> None:
        self._counted[message.state] -= 1
        message.state = state
        self._counted[state] += 1

    def _drop(self, message_id: int) -> None:
        message = self.messages.pop(message_id)
        self._counted[message.state] -= 1

    def _release(self) -> None:
        while self._later and self._later[0][0] <= self._sim.now:
            visible_at, message_id, handle = heapq.heappop(self._later)
            message = self.messages.get(message_id)
            if message is None or message.handle != handle or message.visible_at != visible_at:
                continue
            self._move(message, "waiting")
            self._ready.append(message_id)

    def _wake(self) -> None:
        waiting, self.pollers = self.pollers, []
        for wake in waiting:
            wake()


class SimQueueClient(IndexQueue):
    """The IndexQueue port over SimQueue, as chalicelib/aws/sqs.py calls
    SQS: a request (and its latency) per batch of 10."""

    def __init__(self, sim: Simulator, queue: SimQueue, counts: Counts) -> None:
        self._sim, self._queue, self._counts = sim, queue, counts

    def _requests(self, items: int) -> None:
        calls = max(1, math.ceil(items / 10))
        self._counts.sqs_requests += calls
        self._sim.sleep(0.01 * calls)

    def send(self, bodies: list[str], delay_seconds: int = 0) -> None:
        if bodies:
            self._requests(len(bodies))
            for body in bodies:
                self._queue.send(body, delay_seconds)

    def delete(self, receipts: list[str]) -> None:
        if receipts:
            self._requests(len(receipts))
            for receipt in receipts:
                self._queue.delete(receipt)

    def retry_after(self, receipts: list[str], seconds: int) -> None:
        if receipts:
            self._requests(len(receipts))
            for receipt in receipts:
                self._queue.retry_after(receipt, seconds)

    def depth(self) -> QueueDepth:
        self._requests(1)
        return self._queue.depth()


class SimHeartbeat:
    """index_queue.Heartbeat as a simulated process: it holds the batch's
    messages until the invocation ends, killed or not."""

    def __init__(self, stage: "Stage", queue: IndexQueue, receipts: list[str]) -> None:
        self._stage, self._queue = stage, queue
        self._held = list(receipts)
        self.alive = True
        stage.heartbeats.append(self)

    def __enter__(self) -> "SimHeartbeat":
        self._queue.retry_after(self._held, index_queue.HOLD_SECONDS)
        self._stage.sim.spawn(self._beat, delay=index_queue.HEARTBEAT_SECONDS)
        return self

    def __exit__(self, *exc) -> None:
        self.alive = False

    def release(self, receipt: str) -> None:
        if receipt in self._held:
            self._held.remove(receipt)

    def _beat(self) -> None:
        while self.alive:
            if self._held:
                self._queue.retry_after(list(self._held), index_queue.HOLD_SECONDS)
            self._stage.sim.sleep(index_queue.HEARTBEAT_SECONDS)


# ---------------------------------------------------------------------------
# Lambda.


@dataclass
class _Environment:
    services: Services
    warm: bool = False
    idle_since: float = 0.0


class Stage:
    """The simulated stage: bucket, records, collection, queue, workers,
    re-drive; `account` (Rekognition's quotas) and `paces` (the shared
    schedules: FACEPRINT_PACE_TABLE) may be another stage's."""

    def __init__(
        self,
        scenario: Scenario,
        sim: Simulator | None = None,
        account: Account | None = None,
        paces: SimState | None = None,
        prefix: str = "photos",
        counts: Counts | None = None,
    ) -> None:
        self.scenario = scenario
        self.sim = sim or Simulator(scenario.seed)
        self.counts = counts or Counts()
        self.prefix = prefix
        env = {
            "FACEPRINT_STAGE": "sim",
            "FACEPRINT_INDEX_TPS": str(scenario.tps),
            "FACEPRINT_DELETE_TPS": str(scenario.delete_tps),
        }
        self.settings = Settings.from_env(env)
        quota = scenario.quota or scenario.tps
        faults = scenario.faults
        self.account = account or Account(
            self.sim,
            self.counts,
            bucket_of(quota, scenario.burst_seconds, scenario.burst_calls),
            bucket_of(scenario.delete_tps, scenario.burst_seconds, scenario.burst_calls),
            bucket_of(self.settings.search_tps, scenario.burst_seconds, scenario.burst_calls),
            faults.outage,
            faults.index_errors,
            faults.poison,
            faults.crashing,
            scenario.collection_limit,
        )
        self.bucket = SimBucket(self.sim, self.counts, self._event)
        self.records = SimRecords(self.sim, self.counts, self._none_pending)
        self.engine = FakeEngine(self.bucket)
        self.state = SimState(self.sim, self.counts)  # the stage's own items: its breaker, its check
        self.paces = paces  # the schedules, when another stage's (FACEPRINT_PACE_TABLE)
        self.queue = SimQueue(
            self.sim, self.counts, visibility=6 * scenario.worker_timeout, max_receives=index_queue.MAX_RECEIVES
        )
        self.base = Services(
            self.settings,
            self.engine,
            self.records,
            self.bucket,
            queue=SimQueueClient(self.sim, self.queue, self.counts),
            clock=self.sim.iso,  # the records' times (pendingSince, retryAt, ...) on the virtual clock
            pacing=self._pacing(),
        )
        self._idle: list[_Environment] = []
        self.heartbeats: list[SimHeartbeat] = []
        self.running = 0
        self.uploaded = 0
        self.expected = scenario.photos  # photos that must end final
        self.settled_at: float | None = None
        self.redrive_log: list[dict] = []
        # The API's function and the re-drive's: a client of their own, the stage's schedules.
        client = SimRekognition(self.account, self.engine, scenario.index_seconds, self._kill_on_index)
        self.api = replace(self.base, engine=PacedEngine(client, self.base.pacing))

    def _pacing(self) -> Pacing:
        s = self.settings
        sim = self.sim
        return Pacing(
            self.state, s.index_tps, s.delete_tps, s.search_tps, "sim", sim.epoch, sim.sleep, sim.rng.random, self.paces
        )

    # S3 -> SQS.

    def _event(self, notification: dict) -> None:
        sim, faults = self.sim, self.scenario.faults
        body = json.dumps(
            {
                "Records": [
                    {
                        "eventVersion": "2.1",
                        "eventSource": "aws:s3",
                        "eventName": notification["eventName"],
                        "s3": {"bucket": {"name": "sim"}, "object": notification["object"]},
                    }
                ]
            }
        )
        if sim.rng.random() < faults.lost_events:
            self.counts.events_lost += 1
            return
        copies = 2 if sim.rng.random() < faults.duplicate_events else 1
        self.counts.events_duplicated += copies - 1
        for _ in range(copies):
            delay = 0.2 + sim.rng.expovariate(1 / 0.8)
            if sim.rng.random() < faults.late_events:
                delay += sim.rng.uniform(10, 120)
            self.counts.events_sent += 1
            self.counts.sqs_requests += 1
            sim.after(delay, lambda: self.queue.send(body))

    # The uploads and deletes.

    def key(self, index: int) -> str:
        return f"{self.prefix}/{index:07d}.png"

    def upload(self, index: int) -> None:
        indexing.upload_image(self.api, self.key(index), photo_of(f"{self.prefix} {index}"), {})
        self.uploaded += 1

    def api_delete(self, index: int) -> None:
        """DELETE /images/{key}: the API's use case, its DeleteFaces on the
        stage's schedule (a 503 when no turn comes soon: the photo is gone
        from the bucket by then, and its ObjectRemoved event finishes)."""
        self.counts.api_deletes += 1
        try:
            library.delete_image(self.api, self.key(index))
        except FaceprintError:
            self.counts.api_delete_busy += 1

    # Lambda's SQS event source and the worker function.

    def poller(self, number: int) -> None:
        sim, queue = self.sim, self.queue
        while True:
            self.counts.sqs_requests += 1
            sim.sleep(0.01)
            messages = queue.receive(index_queue.BATCH_SIZE)
            if not messages:
                waiter = Waiter(sim)
                queue.pollers.append(waiter.wake)
                sim.park(waiter, timeout=LONG_POLL_SECONDS)
                continue
            self.invoke(messages)

    def invoke(self, messages: list[QueuedMessage]) -> None:
        sim, counts = self.sim, self.counts
        environment = self._environment()
        started = sim.now
        counts.invocations += 1
        self.running += 1
        counts.peak_concurrency = max(counts.peak_concurrency, self.running)
        outcome: list = []
        done = Waiter(sim)
        beats: list[SimHeartbeat] = []

        def hold(queue: IndexQueue, receipts: list[str]) -> SimHeartbeat:
            beats.append(SimHeartbeat(self, queue, receipts))
            return beats[-1]

        def run() -> None:
            try:
                if not environment.warm:
                    counts.cold_starts += 1
                    sim.sleep(0.8)
                    environment.warm = True
                seconds_left = lambda: self.scenario.worker_timeout - (sim.now - started)  # noqa: E731
                summary = index_queue.handle_batch(environment.services, messages, seconds_left, sim.rng, hold)
                counts.throttled_batches += bool(summary["throttled"])
                counts.breaker_waits += summary["breakerOpen"]
                outcome.append("ok")
            except BatchFailed:
                outcome.append("failed")
            except Killed:
                outcome.append("killed")
                counts.killed_before_holding += not beats  # in its start-up: the batch waits out its visibility
            finally:
                for beat in beats:
                    beat.alive = False  # a killed invocation's heartbeat dies with it
                done.wake()

        invocation = sim.spawn(run)
        kill_at = started + self.scenario.worker_timeout
        if sim.rng.random() < self.scenario.faults.crashes:
            kill_at = min(kill_at, started + sim.rng.uniform(0, 20))
        sim.at(kill_at, lambda: invocation.throw(Killed()) if invocation else None)
        sim.park(done)
        self.running -= 1
        counts.gb_seconds += math.ceil((sim.now - started) * 1000) / 1000 * self.scenario.worker_memory_mb / 1024
        if outcome == ["ok"]:
            self.counts.sqs_requests += 1
            sim.sleep(0.01)
            for message in messages:
                self.queue.delete(message.receipt)
        elif outcome == ["failed"]:
            counts.failed_invocations += 1
        else:
            counts.killed_invocations += 1
            environment.warm = False  # a crashed environment is replaced
        environment.idle_since = sim.now
        self._idle.append(environment)

    def _kill_on_index(self, key: str) -> None:
        """A photo that kills the worker indexing it (out of memory)."""
        if key in self.account.crashing:
            raise Killed()

    def _environment(self) -> _Environment:
        while self._idle:
            environment = self._idle.pop()
            if environment.warm and self.sim.now - environment.idle_since < ENVIRONMENT_IDLE_SECONDS:
                return environment
        client = SimRekognition(self.account, self.engine, self.scenario.index_seconds, self._kill_on_index)
        pacing = self._pacing()  # each environment its own objects, one shared item
        return _Environment(replace(self.base, engine=PacedEngine(client, pacing), pacing=pacing))

    def event_source(self) -> None:
        """Pollers: 5 at first, then up to 300 more a minute, up to the
        maximum concurrency."""
        workers = self.settings.workers
        for number in range(workers):
            start = 0.0 if number < FIRST_POLLERS else (number - FIRST_POLLERS + 1) * 60 / POLLERS_PER_MINUTE
            self.sim.spawn(lambda number=number: self.poller(number), delay=start)

    def sampler(self) -> None:
        while True:
            self.queue.sample()
            self.sim.sleep(SAMPLE_SECONDS)

    # The scheduled re-drive.

    def redrive(self) -> None:
        sim, counts = self.sim, self.counts
        started, units = sim.now, counts.read_units
        counts.invocations += 1
        counts.redrive_runs += 1
        result = index_queue.redrive_lost(self.api, moment=sim.iso())
        counts.redriven += result["redriven"]
        counts.redrive_read_units_max = max(counts.redrive_read_units_max, counts.read_units - units)
        counts.redrive_keys_max = max(counts.redrive_keys_max, result["redriven"])
        depth = result["waiting"] + result["inFlight"] + result["delayed"]
        counts.redrive_backlog_max = max(counts.redrive_backlog_max, depth)
        counts.stuck_runs += result["stuck"] > 0
        counts.pending_too_long_max = max(counts.pending_too_long_max, result["pendingTooLong"])
        room, limit = result["collectionRoom"], self.account.collection_limit
        counts.nearly_full_runs += room is not None and room <= index_queue.COLLECTION_NEARLY_FULL * limit
        if counts.redrive_runs % 60 == 1:
            self.redrive_log.append({"at": sim.now, "depth": depth, "units": counts.read_units - units, **result})
        counts.gb_seconds += (sim.now - started + 0.05) * self.scenario.redrive_memory_mb / 1024
        sim.spawn(self.redrive, delay=index_queue.REDRIVE_EVERY_SECONDS - (sim.now - started))

    # Running it.

    def _none_pending(self) -> None:
        if self.uploaded >= self.expected:
            self.settled_at = self.sim.now  # the last photo's status became final (for now)

    def settled(self) -> bool:
        """Every photo final, the queue empty, no invocation running."""
        if self.uploaded < self.expected or self.records.pending:
            return False
        return self.queue.size == 0 and self.running == 0

    def minimum_seconds(self) -> float:
        """The quota-limited minimum: one IndexFaces a photo at the quota,
        not before the last upload."""
        quota = self.scenario.quota or self.scenario.tps
        last_upload = (self.scenario.photos - 1) / self.scenario.upload_rate if self.scenario.upload_rate else 0.0
        return max(self.scenario.photos / quota, last_upload + 1 / quota)

    def start(self) -> None:
        scenario, sim = self.scenario, self.sim
        if scenario.upload_rate:
            for index in range(scenario.photos):
                sim.spawn(lambda index=index: self.upload(index), delay=index / scenario.upload_rate)
        else:  # all at once: as fast as UPLOADERS uploads at a time put them
            indexes = iter(range(scenario.photos))
            for _ in range(min(UPLOADERS, scenario.photos)):
                sim.spawn(lambda: [self.upload(index) for index in indexes])
        self.event_source()
        sim.spawn(self.sampler)
        sim.spawn(self.redrive, delay=index_queue.REDRIVE_EVERY_SECONDS)

    def horizon(self) -> float:
        outage = self.scenario.faults.outage
        extra = outage.start + outage.hours * 3600 if outage else 0.0
        return max(3 * self.minimum_seconds(), self.minimum_seconds() + 2 * 3600) + extra

    def run(self) -> "Result":
        with _quiet():
            self.start()
            self.sim.run(self.settled, self.horizon())
        return self.result()

    def result(self) -> "Result":
        statuses: dict[str, int] = {}
        for image in self.records.images.values():
            statuses[image["status"]] = statuses.get(image["status"], 0) + 1
        recorded = set(self.records.faces)
        collection = set(self.engine.faces)
        dead_keys = {event.key for body in self.queue.dead for event in _decoded(body)}
        guilty = self.scenario.faults.poison | self.scenario.faults.crashing
        return Result(
            scenario=self.scenario,
            workers=self.settings.workers,
            statuses=statuses,
            failed_reasons=sorted({i.get("error", "") for i in self.records.images.values() if i["status"] == FAILED}),
            settled_seconds=self.settled_at
            if self.settled_at is not None and not self.records.pending
            else self.sim.now,
            all_final=self.uploaded >= self.expected and not self.records.pending,
            minimum_seconds=self.minimum_seconds(),
            dead_letters=len(self.queue.dead),
            innocent_dead_letters=len(dead_keys - guilty),
            left_in_queue=self.queue.size,
            stray_faces=len(collection - recorded),
            missing_faces=len(recorded - collection),
            counts=self.counts,
            redrive_log=self.redrive_log,
        )


def _decoded(body: str) -> list:
    try:
        return index_queue.decode(body)
    except ValueError:
        return []


@dataclass
class Result:
    scenario: Scenario
    workers: int
    statuses: dict[str, int]
    failed_reasons: list[str]
    settled_seconds: float
    all_final: bool
    minimum_seconds: float
    dead_letters: int
    innocent_dead_letters: int
    left_in_queue: int
    stray_faces: int
    missing_faces: int
    counts: Counts
    redrive_log: list[dict] = field(default_factory=list)

    @property
    def indexed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in FINAL and status != FAILED)

    @property
    def failed(self) -> int:
        return self.statuses.get(FAILED, 0)

    @property
    def pending(self) -> int:
        return self.scenario.photos - self.indexed - self.failed

    @property
    def outage_seconds(self) -> float:
        outage = self.scenario.faults.outage
        return outage.hours * 3600 if outage else 0.0

    @property
    def ratio(self) -> float:
        """Settled against the quota's minimum (plus the outage, if any)."""
        return self.settled_seconds / (self.minimum_seconds + self.outage_seconds)

    @property
    def invocations_per_photo(self) -> float:
        return (self.counts.invocations - self.counts.redrive_runs) / self.scenario.photos

    @property
    def calls_per_photo(self) -> float:
        return self.counts.index_calls / self.scenario.photos

    @property
    def alarms(self) -> list[str]:
        """The CloudWatch alarms `make aws-setup` makes that would have gone off."""
        fired = []
        if self.dead_letters:
            fired.append("dead letters")
        if self.counts.stuck_runs:
            fired.append("stuck")
        if self.counts.nearly_full_runs:
            fired.append("collection nearly full")
        return fired

    def costs(self) -> dict[str, float]:
        c = self.counts
        return {
            "Rekognition": c.index_billed * PRICE_INDEX_FACES,
            "Lambda": c.invocations * PRICE_LAMBDA_REQUEST + c.gb_seconds * PRICE_LAMBDA_GB_SECOND,
            "SQS": c.sqs_requests * PRICE_SQS_REQUEST,
            "DynamoDB": c.write_units * PRICE_WRITE_UNIT + c.read_units * PRICE_READ_UNIT,
            "S3": c.s3_puts * PRICE_S3_PUT + c.s3_gets * PRICE_S3_GET,
        }

    def report(self) -> str:
        s, c = self.scenario, self.counts
        arrival = f"at {s.upload_rate:g} a second" if s.upload_rate else "all at once"
        quota = f", account quota {s.quota:g}/s" if s.quota else ""
        burst = f", burst {s.burst_calls} call(s)" if s.burst_calls else ""
        outage = s.faults.outage
        trouble = f", Rekognition {outage.kind} for {outage.hours:g} h" if outage else ""
        costs = self.costs()
        settled = "" if self.all_final else ": NOT SETTLED"
        plus = " + the outage" if outage else ""
        lines = [
            f"simulate-aws: {s.photos:,} photos uploaded {arrival}, FACEPRINT_INDEX_TPS={s.tps:g}{quota}{burst},"
            f" IndexFaces {s.index_seconds:g} s{trouble}, seed {s.seed}",
            f"  workers: {self.workers} (the queue's maximum concurrency), IndexFaces on one shared schedule",
            f"  settled after {_duration(self.settled_seconds)}; quota-limited minimum{plus}"
            f" {_duration(self.minimum_seconds + self.outage_seconds)} ({self.ratio:.3f}x){settled}",
            f"  photos: {self.indexed:,} indexed, {self.failed:,} failed, {self.pending:,} pending;"
            f" {self.dead_letters:,} in the dead-letter queue ({self.innocent_dead_letters:,} innocent),"
            f" {self.left_in_queue:,} left in the queue",
            f"  Lambda: {c.invocations - c.redrive_runs:,} worker invocations"
            f" ({self.invocations_per_photo:.3f} a photo), {c.failed_invocations:,} failed,"
            f" {c.killed_invocations:,} killed, {c.cold_starts:,} cold starts, peak concurrency {c.peak_concurrency};"
            f" {c.redrive_runs:,} re-drive runs sent {c.redriven:,} photos",
            f"  IndexFaces: {c.index_calls:,} calls ({self.calls_per_photo:.4f} a photo), {c.throttled:,} throttled,"
            f" {c.index_errors:,} failed with a 5xx, {c.timeouts:,} timed out; {c.throttled_batches:,} batches"
            f" throttled, {c.breaker_waits:,} stopped by the breaker",
            f"  re-drive: at most {c.redrive_read_units_max:.1f} read units and {c.redrive_keys_max:,} keys a run"
            f" (queue up to {c.redrive_backlog_max:,}); photos due over a day up to {c.pending_too_long_max:,},"
            f" stuck in {c.stuck_runs:,} runs; alarms: {', '.join(self.alarms) or 'none'}",
            f"  faults: {c.events_duplicated:,} duplicate events, {c.events_lost:,} lost events,"
            f" {c.killed_invocations:,} killed invocations; {self.stray_faces:,} stray faces in the collection"
            f" (a crash between IndexFaces and its commit), {self.missing_faces:,} missing",
            "  cost: "
            + ", ".join(f"{name} ${value:,.2f}" for name, value in costs.items())
            + f"; total ${sum(costs.values()):,.2f}"
            + f" (then ${self.indexed * PRICE_FACE_MONTH:,.2f} a month to store the faces)",
        ]
        if self.failed_reasons:
            lines.append(f"  failed because: {'; '.join(self.failed_reasons)}")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s"


@contextmanager
def _quiet() -> Iterator[None]:
    """No log line per photo: a million lines would be most of the time."""
    loggers = [logging.getLogger("faceprint.lines"), logging.getLogger("faceprint")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def simulate(scenario: Scenario) -> Result:
    return Stage(scenario).run()


# ---------------------------------------------------------------------------
# Mass deletes.


@dataclass
class DeleteResult:
    photos: int
    how: str
    delete_tps: float
    settled_seconds: float
    minimum_seconds: float
    records_left: int
    faces_left: int
    records_left_after_check: int
    faces_left_after_check: int
    counts: Counts

    @property
    def ratio(self) -> float:
        return self.settled_seconds / self.minimum_seconds

    def report(self) -> str:
        c = self.counts
        return "\n".join(
            [
                f"simulate-aws deletes: {self.photos:,} indexed photos deleted {self.how},"
                f" DeleteFaces quota {self.delete_tps:g}/s",
                f"  settled after {_duration(self.settled_seconds)}; the quota's minimum"
                f" {_duration(self.minimum_seconds)} ({self.ratio:.3f}x)",
                f"  left: {self.records_left:,} records and {self.faces_left:,} faces in the collection"
                f" ({c.events_lost:,} ObjectRemoved events lost); after a round of the scheduled check:"
                f" {self.records_left_after_check:,} records, {self.faces_left_after_check:,} faces",
                f"  DeleteFaces: {c.delete_calls:,} calls, {c.delete_throttled:,} throttled;"
                f" API: {c.api_deletes:,} deletes, {c.api_delete_busy:,} answered 503 (the event finished them)",
            ]
        )


def simulate_deletes(photos: int, how: str, delete_tps: float = 5.0, seed: int = 1, faults: Faults | None = None):
    """`photos` photos indexed, then deleted: through the API at 50 a
    second (`how="api"`), or with `aws s3 rm --recursive` (`how="s3"`, some
    200 deletes a second). Settled when no record and no face is left and
    the queue is empty; then one round of the scheduled check (it finds
    what a lost ObjectRemoved left)."""
    scenario = Scenario(photos=photos, tps=50, seed=seed, delete_tps=delete_tps, faults=faults or Faults())
    stage = Stage(scenario)
    sim, quiet = stage.sim, stage.bucket._notify
    stage.bucket._notify = lambda notification: None  # the photos as they were: indexed, their events long gone
    setup = replace(stage.base, engine=stage.engine, index_on_upload=True)
    indexes = iter(range(photos))
    for _ in range(UPLOADERS):
        sim.spawn(lambda: [indexing.upload_image(setup, stage.key(i), photo_of(f"photos {i}"), {}) for i in indexes])
    with _quiet():
        sim.run(lambda: len(stage.records.images) == photos, horizon=10 * 3600)
    stage.bucket._notify = quiet
    stage.uploaded = stage.expected = photos
    began, rate = sim.now, 50.0 if how == "api" else 200.0
    for index in range(photos):
        act = stage.api_delete if how == "api" else lambda i: stage.bucket.delete_current(stage.key(i))
        sim.spawn(lambda index=index, act=act: act(index), delay=index / rate)
    stage.event_source()
    sim.spawn(stage.sampler)
    sim.spawn(stage.redrive, delay=index_queue.REDRIVE_EVERY_SECONDS)
    done: list[float] = []
    last_delete = began + (photos - 1) / rate

    def settled() -> bool:
        """Every delete made, the queue empty, no worker running: what is
        left is what a lost event left."""
        if sim.now > last_delete + 60 and stage.queue.size == 0 and stage.running == 0:
            done.append(sim.now)
        return bool(done)

    minimum = max(photos / delete_tps, photos / rate)
    with _quiet():
        sim.run(settled, horizon=began + 3 * minimum + 7200)
    settled_at = (done[0] if done else sim.now) - began
    records_left, faces_left = len(stage.records.images), len(stage.engine.faces)
    _one_round_of_the_check(stage)
    return DeleteResult(
        photos,
        "through the API at 50 a second" if how == "api" else "with `aws s3 rm --recursive`",
        delete_tps,
        settled_at,
        minimum,
        records_left,
        faces_left,
        len(stage.records.images),
        len(stage.engine.faces),
        stage.counts,
    )


def _one_round_of_the_check(stage: Stage) -> float:
    """The scheduled check (maintenance.sweep_for) run after run until a
    round ends; the virtual seconds it took."""
    from chalicelib.ops import maintenance

    sim, took = stage.sim, []
    svc = replace(stage.base, engine=PacedEngine(stage.engine, stage.base.pacing))

    def runs() -> None:
        began = sim.now
        while True:
            done = maintenance.sweep_for(svc, seconds=750, threads=1)
            if done["roundsDone"]:
                took.append(sim.now - began)
                return
            sim.sleep(3600 - 750)

    sim.spawn(runs)
    with _quiet():
        sim.run(lambda: bool(took), horizon=sim.now + 30 * 24 * 3600)
    return took[0] if took else math.inf


# ---------------------------------------------------------------------------
# Searches.


@dataclass
class SearchResult:
    rate: float
    seconds: float
    budget: bool
    answered: int
    gateway_429: int
    budget_429: int
    throttled_503: int
    requests: int
    rekognition_calls: int
    rekognition_throttled: int
    busiest_second: int
    quota: float

    def report(self) -> str:
        def share(n: int) -> str:
            return f"{n:,} ({100 * n / max(1, self.requests):.0f}%)"

        mode = "the stage's one budget" if self.budget else "per-method throttles only (as before)"
        return "\n".join(
            [
                f"simulate-aws searches: {self.rate:g} a second for {_duration(self.seconds)}, POST and PUT /search,"
                f" 30% with faces=all; SearchFacesByImage quota {self.quota:g}/s; {mode}",
                f"  {share(self.answered)} answered, {share(self.gateway_429)} 429 from API Gateway,"
                f" {share(self.budget_429)} 429 from the budget,"
                f" {share(self.throttled_503)} 503 (Rekognition throttled)",
                f"  SearchFacesByImage: {self.rekognition_calls:,} calls reached it, {self.rekognition_throttled:,}"
                f" throttled; at most {self.busiest_second} in one second",
            ]
        )


def simulate_searches(rate: float = 10.0, seconds: float = 600.0, budget: bool = True, seed: int = 1) -> SearchResult:
    """Searches at `rate` a second, half POST, half PUT /search, 30% with
    faces=all (one DetectFaces, then a SearchFacesByImage per face: 1 to 4),
    through API Gateway's usage plan (`make aws-setup`: each search method
    throttled at FACEPRINT_SEARCH_TPS, a bucket of its own as API Gateway
    keeps them), then the function: with the stage's one search budget
    (core/pacing.py), or without (how it was)."""
    sim = Simulator(seed)
    counts = Counts()
    settings = Settings.from_env({"FACEPRINT_STAGE": "sim"})
    quota = settings.search_tps
    searches: list[float] = []
    account = Account(
        sim, counts, TokenBucket(5, 5), TokenBucket(5, 5), _Recording(TokenBucket(quota, max(1.0, quota)), searches)
    )
    state = SimState(sim, counts)
    pacing = Pacing(state, 5, 5, quota, "sim", sim.epoch, sim.sleep, sim.rng.random) if budget else None
    gateway = {method: TokenBucket(quota, max(1, math.ceil(quota))) for method in ("POST", "PUT")}
    outcome = {"ok": 0, "gateway": 0, "TooManyRequests": 0, "503": 0}
    requests = int(rate * seconds)
    client = SimRekognition(account, FakeEngine(None), 0.3, lambda key: None)

    def request() -> None:
        if not gateway[sim.rng.choice(("POST", "PUT"))].take(sim.now):
            outcome["gateway"] += 1
            return
        faces = sim.rng.randint(1, 4) if sim.rng.random() < 0.3 else 0
        if faces:
            sim.sleep(LATENCY["DetectFaces"])
        for _ in range(max(1, faces)):
            code = client.search(pacing)
            if code:
                outcome["TooManyRequests" if code == "TooManyRequests" else "503"] += 1
                return
        outcome["ok"] += 1

    for number in range(requests):
        sim.spawn(request, delay=number / rate + sim.rng.uniform(0, 1 / rate))
    with _quiet():
        sim.run(lambda: False, horizon=seconds + 120)
    busiest = max((sum(1 for t in searches if start <= t < start + 1) for start in searches), default=0)
    return SearchResult(
        rate,
        seconds,
        budget,
        outcome["ok"],
        outcome["gateway"],
        outcome["TooManyRequests"],
        outcome["503"],
        requests,
        len(searches),
        account.search.refused,
        busiest,
        quota,
    )


class _Recording:
    """A token bucket that notes when each call it lets through came."""

    def __init__(self, bucket: TokenBucket, times: list[float]) -> None:
        self._bucket, self._times, self.refused = bucket, times, 0

    def take(self, now: float) -> bool:
        if self._bucket.take(now):
            self._times.append(now)
            return True
        self.refused += 1
        return False


# ---------------------------------------------------------------------------
# Two stages on one quota.


def simulate_two_stages(photos: int, tps: float, shared_pace: bool, seed: int = 1) -> Result:
    """Two stages of one account and region, each FACEPRINT_INDEX_TPS set to
    the account's whole quota, each importing `photos`: with a schedule of
    their own each (they overrun it: throttles, and the pace adapts), or
    one they share (FACEPRINT_PACE_TABLE). The result is both together,
    against the quota's minimum for both."""
    scenario = Scenario(photos=photos, tps=tps, seed=seed)
    first = Stage(scenario, prefix="a")
    paces = first.state if shared_pace else None  # the first stage's table holds the schedules
    second = Stage(scenario, first.sim, first.account, paces, prefix="b", counts=first.counts)
    with _quiet():
        first.start()
        second.start()
        first.sim.run(lambda: first.settled() and second.settled(), max(first.horizon(), 2 * first.horizon()))
    result = first.result()
    other = second.result()
    ends = max(result.settled_seconds, other.settled_seconds)
    statuses = {k: result.statuses.get(k, 0) + other.statuses.get(k, 0) for k in {*result.statuses, *other.statuses}}
    both = replace(scenario, photos=2 * photos, name="two stages, one pace" if shared_pace else "two stages")
    return replace(
        result,
        scenario=both,
        statuses=statuses,
        settled_seconds=ends,
        all_final=result.all_final and other.all_final,
        minimum_seconds=2 * photos / tps,
        dead_letters=result.dead_letters + other.dead_letters,
        innocent_dead_letters=result.innocent_dead_letters + other.innocent_dead_letters,
        left_in_queue=result.left_in_queue + other.left_in_queue,
    )


# ---------------------------------------------------------------------------
# The scheduled check on an archive of millions of faces.
#
# The archive is made up as it is read (photo i has FACES_PER_PHOTO faces,
# ids and keys from its number), so ten million faces hold no memory; what
# each call costs follows the adapters: ListFaces 4,096 faces a call
# (0.3 s), a DynamoDB Scan page 1,000 items (30 ms), BatchGetItem 100 keys
# (15 ms), GetItem 5 ms, ListObjectsV2 1,000 keys (50 ms), HeadObject 15 ms.
# The image records' pass looks up each photo (a HEAD and its faces)
# CHECK_THREADS at a time: each lookup counts that share of its latency.


class CheckClock:
    """The virtual clock of the check, and what its calls cost."""

    def __init__(self) -> None:
        self.now = EPOCH_SECONDS
        self.calls = 0
        self.read_units = 0.0
        self.s3_gets = 0
        self.s3_lists = 0

    def spend(self, seconds: float, read_units: float = 0.0) -> None:
        self.now += seconds
        self.calls += 1
        self.read_units += read_units

    @property
    def cost(self) -> float:
        return self.read_units * PRICE_READ_UNIT + self.s3_gets * PRICE_S3_GET + self.s3_lists * PRICE_S3_PUT


def _page_of(token: str | None, total: int, size: int) -> tuple[range, str | None]:
    start = int(token or 0)
    end = min(total, start + size)
    return range(start, end), (str(end) if end < total else None)


class SynthArchive:
    """What is in each store: photo i, its faces, and the drift injected."""

    def __init__(self, faces: int, per_photo: int, strays: int, lost_removals: int, seed: int) -> None:
        self.per_photo = per_photo
        self.photos = faces // per_photo
        rng = random.Random(seed)
        self.strays = [f"stray-{n:06d}" for n in range(strays)]  # in the collection, no record (a crash)
        self.stray_owner = {face_id: rng.randrange(self.photos) for face_id in self.strays}
        self.gone = set(rng.sample(range(self.photos), lost_removals))  # photos deleted, their event lost
        self.deleted_faces: set[str] = set()
        self.removed_photos: set[int] = set()

    def key(self, photo: int) -> str:
        return f"photos/{photo:07d}.jpg"

    def number(self, key: str) -> int:
        return int(key[len("photos/") : -len(".jpg")])

    def face_id(self, index: int) -> str:
        return f"{index // self.per_photo:07d}-{index % self.per_photo:02d}"

    def photo_of(self, face_id: str) -> int:
        return int(face_id.split("-")[0])

    def in_collection(self, face_id: str) -> bool:
        if face_id in self.deleted_faces:
            return False
        if face_id.startswith("stray-"):
            return True
        return self.photo_of(face_id) not in self.removed_photos

    def recorded(self, photo: int) -> bool:
        return photo not in self.removed_photos


class SynthCollection(FaceEngine):
    def __init__(self, archive: SynthArchive, clock: CheckClock) -> None:
        self._a, self._clock = archive, clock

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        total = self._a.photos * self._a.per_photo + len(self._a.strays)
        indexes, token = _page_of(token, total, min(limit, 4096))
        self._clock.spend(0.3)
        regular = self._a.photos * self._a.per_photo
        ids = [self._a.face_id(i) if i < regular else self._a.strays[i - regular] for i in indexes]
        return Page([face_id for face_id in ids if self._a.in_collection(face_id)], token)

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        self._clock.spend(0.3 * math.ceil(len(face_ids) / 4096))
        return {
            face_id: {"FaceId": face_id, "ExternalImageId": self._external(face_id)}
            for face_id in face_ids
            if self._a.in_collection(face_id)
        }

    def _external(self, face_id: str) -> str:
        photo = self._a.stray_owner[face_id] if face_id.startswith("stray-") else self._a.photo_of(face_id)
        return self._a.key(photo)

    def delete_faces(self, face_ids: list[str]) -> None:
        self._clock.spend(0.2 * math.ceil(len(face_ids) / 4096))
        self._a.deleted_faces.update(face_ids)

    def index_faces(self, photo, external_image_id):
        raise NotImplementedError

    def search_faces_by_image(self, data, threshold, max_faces):
        raise NotImplementedError

    def search_all_faces_by_image(self, data, threshold, max_faces):
        raise NotImplementedError

    def list_faces(self, limit, token=None):
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    def face_count(self) -> int:
        return self._a.photos * self._a.per_photo

    def stranger_model(self) -> StrangerModel:
        raise NotImplementedError


class SynthRecords(InMemoryRecordStore):
    """The record store's reads the check makes, made up from the archive
    (its writes: only what repairs of strays and lost removals need)."""

    def __init__(self, archive: SynthArchive, clock: CheckClock) -> None:
        super().__init__()
        self._a, self._clock = archive, clock

    def _image(self, photo: int) -> dict:
        return {
            "key": self._a.key(photo),
            "status": "indexed",
            "etag": f"etag-{photo}",
            "faceCount": self._a.per_photo,
            "metadata": {},
            "uploadedAt": "2026-01-01T00:00:00.000+00:00",
            "revision": 1,
        }

    def _faces(self, photo: int) -> list[dict]:
        return [{"FaceId": f"{photo:07d}-{j:02d}", "imageKey": self._a.key(photo)} for j in range(self._a.per_photo)]

    def get_image(self, key: str) -> dict | None:
        self._clock.spend(0.005, 1)
        photo = self._a.number(key)
        return self._image(photo) if self._a.recorded(photo) else None

    def get_images(self, keys: list[str]) -> dict[str, dict]:
        self._clock.spend(0.015 * math.ceil(len(keys) / 100), len(keys))
        return {key: self._image(self._a.number(key)) for key in keys if self._a.recorded(self._a.number(key))}

    def faces_of(self, key: str) -> list[dict]:
        self._clock.spend((0.005 + 0.015) / CHECK_THREADS, 1 + self._a.per_photo)  # CHECK_THREADS at a time
        photo = self._a.number(key)
        return self._faces(photo) if self._a.recorded(photo) else []

    def find_faces(self, face_ids: list[str]) -> dict[str, tuple[dict, dict]]:
        images = len({face_id.split("-")[0] for face_id in face_ids})
        self._clock.spend(0.015 * math.ceil(len(face_ids) / 100) * 1.1, len(face_ids) + images)  # faces, images
        return {
            face_id: ({"FaceId": face_id, "imageKey": self._a.key(self._a.photo_of(face_id))}, {})
            for face_id in face_ids
            if not face_id.startswith("stray-") and self._a.recorded(self._a.photo_of(face_id))
        }

    def existing_faces(self, face_ids: list[str]) -> set[str]:
        return set(self.find_faces(face_ids))

    def list_face_keys(self, limit: int, token: str | None = None) -> Page:
        indexes, token = _page_of(token, self._a.photos * self._a.per_photo, min(limit, 1000))
        self._clock.spend(0.03, 0.5 * len(indexes) * 300 / 4096)  # a Scan: eventually consistent, by size
        keys = [FaceKey(self._a.face_id(i), self._a.key(i // self._a.per_photo)) for i in indexes]
        return Page([k for k in keys if self._a.recorded(self._a.photo_of(k.face_id))], token)

    def list_image_states(self, limit: int, token: str | None = None) -> Page:
        indexes, token = _page_of(token, self._a.photos, min(limit, 1000))
        self._clock.spend(0.03, 0.5 * len(indexes) * 1000 / 4096)  # image items of some 1 KB
        return Page(
            [
                ImageState(self._a.key(i), f"etag-{i}", "indexed", self._a.per_photo, "2026-01-01T00:00:00.000+00:00")
                for i in indexes
                if self._a.recorded(i)
            ],
            token,
        )

    def remove_image(self, key: str, expected_revision: int | None = None) -> list[str] | None:
        self._clock.spend(0.03)
        photo = self._a.number(key)
        self._a.removed_photos.add(photo)
        return [face["FaceId"] for face in self._faces(photo)]

    def list_pending(self, older_than: str, limit: int) -> list[str]:
        return []


class SynthBucket(PhotoStore):
    def __init__(self, archive: SynthArchive, clock: CheckClock) -> None:
        self._a, self._clock = archive, clock

    def head(self, key: str) -> StoredPhoto | None:
        self._clock.spend(0.015 / CHECK_THREADS)  # looked up CHECK_THREADS at a time
        self._clock.s3_gets += 1
        photo = self._a.number(key)
        if photo in self._a.gone:
            return None
        return StoredPhoto(key, f"etag-{photo}", 1, "image/jpeg", stored_at="2026-01-01T00:00:00.000+00:00")

    def list(self, limit: int, token: str | None = None) -> Page:
        indexes, token = _page_of(token, self._a.photos, min(limit, 1000))
        self._clock.spend(0.05)
        self._clock.s3_lists += 1
        return Page([ListedPhoto(self._a.key(i), f"etag-{i}", 1) for i in indexes if i not in self._a.gone], token)

    def put(self, key, data, content_type, metadata, original_content_type=""):
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def download_url(self, key: str) -> None:
        return None

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def replace_metadata(self, key: str, etag: str, metadata: dict[str, str]) -> StoredPhoto | None:
        raise NotImplementedError


CHECK_THREADS = 16  # chalicelib/ops/maintenance.py's CHECK_THREADS, as the scheduled check runs


@dataclass
class CheckResult:
    faces: int
    photos: int
    runs: int
    round_hours: float
    longest_run_seconds: float
    peak_mb: float
    found: dict[str, int]
    strays_left: int
    records_left: int
    calls: int
    cost: float

    def report(self) -> str:
        found = ", ".join(f"{n:,} {kind}" for kind, n in sorted(self.found.items())) or "nothing"
        return "\n".join(
            [
                f"simulate-aws check: the scheduled check over {self.faces:,} faces of {self.photos:,} photos,"
                f" a run an hour of at most {maintenance_budget():.0f} s",
                f"  a full round took {self.runs} runs ({self.round_hours:.0f} h); the longest run"
                f" {self.longest_run_seconds:.0f} s of Lambda's 900; at most {self.peak_mb:.1f} MB held",
                f"  found and repaired: {found}; left: {self.strays_left} stray faces,"
                f" {self.records_left} records without their photo; {self.calls:,} calls,"
                f" ${self.cost:,.2f} a round (DynamoDB reads, S3 HEADs and listings)",
            ]
        )


def maintenance_budget() -> float:
    from chalicelib.ops import maintenance

    return 900 - maintenance.CHECK_MARGIN_SECONDS


def simulate_check(faces: int = 10_000_000, seed: int = 1, per_photo: int = 10) -> CheckResult:
    """The scheduled check (maintenance.sweep_for) run after run, an hour
    apart, on an archive of `faces` faces with 100 stray faces (runs that
    died between IndexFaces and their commit) and 100 records whose photo
    was deleted with its event lost, until a round ends."""
    import tracemalloc

    from chalicelib.ops import maintenance

    archive = SynthArchive(faces, per_photo, strays=100, lost_removals=100, seed=seed)
    clock = CheckClock()
    state = InMemoryState()
    settings = Settings.from_env({"FACEPRINT_STAGE": "sim"})
    pacing = Pacing(state, 5, 1000, 5, "sim", lambda: clock.now, clock.spend, random.Random(seed).random)
    svc = Services(
        settings,
        SynthCollection(archive, clock),
        SynthRecords(archive, clock),
        SynthBucket(archive, clock),
        queue=None,
        clock=lambda: (EPOCH + timedelta(seconds=clock.now - EPOCH_SECONDS)).isoformat(timespec="milliseconds"),
        pacing=pacing,
    )
    runs, longest, peak = 0, 0.0, 0
    found: dict[str, int] = {}
    began = clock.now
    with _quiet():
        while True:
            runs += 1
            tracemalloc.start()
            started = clock.now
            done = maintenance.sweep_for(svc, maintenance_budget(), threads=1)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
            longest = max(longest, clock.now - started)
            for kind, n in done["byKind"].items():
                found[kind] = found.get(kind, 0) + n
            if done["roundsDone"] or runs > 1000:
                break
            clock.now = started + 3600
    return CheckResult(
        faces,
        archive.photos,
        runs,
        (clock.now - began) / 3600,
        longest,
        peak / 1e6,
        found,
        sum(1 for face_id in archive.strays if archive.in_collection(face_id)),
        sum(1 for photo in archive.gone if archive.recorded(photo)),
        clock.calls,
        clock.cost,
    )
