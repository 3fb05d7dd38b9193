"""A discrete-event simulation of a Faceprint AWS stage at volume: N photos
uploaded at once (or at a given rate), indexed through the queue by the
project's own code (indexing.py, index_queue.py, pacing.py: the very
functions app.py's handlers call) over the in-memory fakes, on a virtual
clock. What stands in for AWS models its documented behaviour:

- S3 -> SQS: each stored or deleted photo sends one event to the queue "at
  least once" (duplicates injected), "typically in seconds but sometimes a
  minute or longer" (S3 User Guide, "Amazon S3 Event Notifications");
  a few are lost (injected), which the re-drive must catch.
- SQS standard queue: a received message is invisible for the visibility
  timeout, then received again; each receive counts (ApproximateReceiveCount)
  and a message received more than maxReceiveCount times goes to the
  dead-letter queue instead (SQS Developer Guide, "Using dead-letter
  queues"); DelaySeconds delays a new message; the approximate counts lag
  up to a minute ("may not achieve consistency until at least 1 minute
  after the producers stop sending").
- Lambda's SQS event source: batches of up to BATCH_SIZE messages, at most
  `maximum concurrency` invocations at once, starting with 5 and adding up
  to 300 a minute; a batch whose invocation succeeds is deleted, one that
  fails or times out comes back after its visibility timeout (Lambda
  Developer Guide, "Using Lambda with Amazon SQS" and "Configuring scaling
  behavior for SQS event source mappings"); idle pollers long-poll (20 s).
  Execution environments are reused while warm (their module state, the
  pace, outlives an invocation), a new one pays a cold start, an invocation
  past the function's timeout is killed, and some crash (injected).
- Rekognition IndexFaces: a token bucket of the account's quota (TPS a
  second, by default a second's worth of burst: AWS publishes the rate,
  not the burst), a ThrottlingException when empty, and a few 5xx errors
  (injected); botocore's standard retry mode on top of each worker's
  client, with botocore's own retry quota and backoff classes
  (botocore/retries/standard.py), MAX_ATTEMPTS attempts in all
  (chalicelib/aws/clients.py), and the adapter's translation of the error.
- Latencies (assumed, not published by AWS): IndexFaces about 0.5 s
  (lognormal), DynamoDB 5 ms, S3 15-40 ms, SQS 10 ms, a cold start 0.8 s.

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
from botocore.exceptions import ClientError
from botocore.retries import quota as botocore_quota
from botocore.retries import standard as botocore_retries

from chalicelib.aws import clients as aws
from chalicelib.core import index_queue, indexing
from chalicelib.core.config import Settings
from chalicelib.core.index_queue import BatchFailed
from chalicelib.core.naming import StrangerModel
from chalicelib.core.pacing import Pace, PacedEngine
from chalicelib.core.ports import Committed, FaceEngine, IndexQueue, Page, PhotoVersion, QueuedMessage
from chalicelib.core.records import FAILED, FINAL, PENDING, redrive_due
from chalicelib.core.services import Services
from tests.support.fakes import FakeEngine, InMemoryPhotoStore, InMemoryRecordStore, photo_of

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

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


@dataclass
class Faults:
    """What goes wrong, and how often."""

    duplicate_events: float = 0.01  # S3 delivers an event twice
    lost_events: float = 0.001  # S3 never delivers an event
    late_events: float = 0.005  # an event takes 10 s to 2 minutes
    index_errors: float = 0.005  # an IndexFaces attempt fails with a 5xx
    crashes: float = 0.001  # an invocation dies (out of memory, runtime error) at a random point
    poison: frozenset[str] = frozenset()  # keys whose IndexFaces always fails


@dataclass
class Scenario:
    photos: int
    tps: float  # the stage's FACEPRINT_INDEX_TPS
    quota: float | None = None  # the account's IndexFaces quota; default: tps
    upload_rate: float = 0.0  # photos a second; 0: all at once
    seed: int = 1
    faults: Faults = field(default_factory=Faults)
    index_seconds: float = 0.5  # IndexFaces' median latency
    burst_seconds: float = 1.0  # how many seconds of the quota Rekognition's bucket holds
    worker_timeout: int = 120
    worker_memory_mb: int = 256
    redrive_memory_mb: int = 256


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
    read_units: float = 0.0
    write_units: float = 0.0
    s3_puts: int = 0
    s3_gets: int = 0  # HEADs, and Rekognition reading the photo
    sqs_requests: int = 0
    invocations: int = 0
    failed_invocations: int = 0
    killed_invocations: int = 0
    cold_starts: int = 0
    gb_seconds: float = 0.0
    redrive_runs: int = 0
    redriven: int = 0
    events_sent: int = 0
    events_lost: int = 0
    events_duplicated: int = 0
    peak_concurrency: int = 0
    throttled_batches: int = 0


class TokenBucket:
    """A rate quota: `rate` tokens a second, at most `capacity` saved up."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.at = capacity, 0.0

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Detector:
    """What botocore's retry classes ask: was this a throttle?"""

    def is_throttling_error_from_context(self, context) -> bool:
        return context.throttled


class SimRekognition(FaceEngine):
    """One worker's Rekognition client: IndexFaces against the account's
    token bucket, with botocore's standard retries and this client's own
    retry quota; the other calls go straight to the fake."""

    def __init__(self, sim: Simulator, engine: FakeEngine, bucket: TokenBucket, counts: Counts, scenario: Scenario):
        self._sim, self._engine, self._bucket, self._counts, self._scenario = sim, engine, bucket, counts, scenario
        detector = _Detector()
        self._quota = botocore_retries.RetryQuotaChecker(botocore_quota.RetryQuota(), detector)
        self._backoff = botocore_retries.ExponentialBackoff(
            random=sim.rng.random, service_name="rekognition", throttling_detector=detector
        )
        self._attempts = aws.config_for("rekognition").retries["total_max_attempts"]

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        sim, counts, faults = self._sim, self._counts, self._scenario.faults
        request: dict = {}
        for attempt in itertools.count(1):
            counts.index_calls += 1
            throttled = not self._bucket.take(sim.now)
            if throttled:
                counts.throttled += 1
                sim.sleep(0.05)
                code = "ThrottlingException"
            else:
                sim.sleep(sim.rng.lognormvariate(math.log(self._scenario.index_seconds), 0.4))
                counts.s3_gets += 1
                if photo.key in faults.poison or sim.rng.random() < faults.index_errors:
                    counts.index_errors += 1
                    code = "InternalServerError"
                else:
                    result = self._engine.index_faces(photo, external_image_id)  # NotFound: a version gone
                    counts.index_billed += 1
                    self._quota.release_retry_quota(request, SimpleNamespace(status_code=200))
                    return result
            context = SimpleNamespace(
                attempt_number=attempt,
                throttled=throttled,
                http_response=None,
                request_context=request,
                add_retry_metadata=lambda **_: None,
            )
            if attempt >= self._attempts or not self._quota.acquire_retry_quota(context):
                error = ClientError({"Error": {"Code": code, "Message": code}}, "IndexFaces")
                raise aws.translate(error, "the simulated collection", "sim")
            sim.sleep(self._backoff.delay_amount(context))
        raise AssertionError("unreachable")

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        return self._engine.search_faces_by_image(data, threshold, max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        return self._engine.search_all_faces_by_image(data, threshold, max_faces)

    def delete_faces(self, face_ids: list[str]) -> None:
        self._engine.delete_faces(face_ids)

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        return self._engine.list_faces(limit, token)

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        return self._engine.list_face_ids(limit, token)

    def describe(self) -> dict:
        return self._engine.describe()

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        return self._engine.get_faces(face_ids)

    def face_count(self) -> int:
        return self._engine.face_count()

    def stranger_model(self) -> StrangerModel:
        return self._engine.stranger_model()


class SimRecords(InMemoryRecordStore):
    """The in-memory record store with the indexes a large archive needs
    (faces by image, pending images), DynamoDB's latency and its request
    units, as chalicelib/aws/dynamodb.py spends them (a record under 1 KB:
    1 unit a read or write; the sparse pending index: 1 more a write that
    adds or removes a pending image)."""

    def __init__(self, sim: Simulator, counts: Counts, on_none_pending: Callable[[], None]) -> None:
        super().__init__()
        self._sim, self._counts, self._on_none_pending = sim, counts, on_none_pending
        self.pending: dict[str, str] = {}  # key -> when the re-drive owes it a visit (records.redrive_due)

    def _call(self, reads: float = 0, writes: float = 0, trips: int = 1) -> None:
        self._counts.read_units += reads
        self._counts.write_units += writes
        self._sim.sleep(0.005 * trips)

    def get_image(self, key: str) -> dict | None:
        self._call(reads=1)
        return super().get_image(key)

    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        self._call(writes=1 + (image["status"] == PENDING or image["key"] in self.pending))
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
        self._call(reads=0.5 * math.ceil(len(self.pending) * 100 / 4096), trips=1 + len(self.pending) // 10_000)
        found = [key for key, due in self.pending.items() if due < older_than]
        return sorted(found, key=self.pending.__getitem__)[:limit]

    def delete_face(self, face_id: str) -> None:
        raise NotImplementedError("not used by indexing")

    def _write(self, image: dict, expected_revision: int | None) -> dict:
        written = super()._write(image, expected_revision)
        due = redrive_due(written)
        if due is not None:
            self.pending[written["key"]] = due
        else:
            self._unpend(written["key"])
        return written

    def _unpend(self, key: str) -> None:
        if self.pending.pop(key, None) is not None and not self.pending:
            self._on_none_pending()


class SimBucket(InMemoryPhotoStore):
    """The versioned bucket: S3's latency and requests, and the event each
    put and delete sends to the queue."""

    def __init__(self, sim: Simulator, counts: Counts, notify: Callable[[dict], None]) -> None:
        super().__init__()
        self._sim, self._counts, self._notify = sim, counts, notify
        self.clock = sim.iso

    def put(self, key, data, content_type, metadata, original_content_type=""):
        self._sim.sleep(0.04)
        self._counts.s3_puts += 1
        stored = super().put(key, data, content_type, metadata, original_content_type)
        sequencer = self.events.pop()["sequencer"]  # the fake's own notification of the put: only it has one
        record = {"key": quote_plus(key), "size": stored.size, "eTag": stored.etag, "versionId": stored.version_id}
        self._notify({"eventName": "ObjectCreated:Put", "object": {**record, "sequencer": sequencer}})
        return stored

    def head(self, key):
        self._sim.sleep(0.015)
        self._counts.s3_gets += 1
        return super().head(key)


# ---------------------------------------------------------------------------
# SQS.


@dataclass
class _Message:
    body: str
    receives: int = 0
    handle: int = 0  # the receipt of the latest receive
    visible_at: float = 0.0


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
        self._in_flight = 0
        self._history: deque[tuple[float, int]] = deque([(0.0, 0)])
        self.pollers: list[Callable[[], None]] = []

    def send(self, body: str, delay: float = 0.0) -> None:
        message_id = next(self._ids)
        self.messages[message_id] = _Message(body, visible_at=self._sim.now + delay)
        if delay > 0:
            heapq.heappush(self._later, (self._sim.now + delay, message_id, 0))
            self._sim.at(self._sim.now + delay, self._wake)
        else:
            self._ready.append(message_id)
            self._wake()
        self._note()

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
                del self.messages[message_id]
                self.dead.append(message.body)
                self._note()
                continue
            message.handle += 1
            message.visible_at = self._sim.now + self.visibility
            heapq.heappush(self._later, (message.visible_at, message_id, message.handle))
            self._in_flight += 1
            got.append(QueuedMessage(message.body, f"{message_id}:{message.handle}", message.receives))
        return got

    def delete(self, receipt: str) -> None:
        message_id, handle = map(int, receipt.split(":"))
        message = self.messages.get(message_id)
        if message is not None and message.handle == handle:
            del self.messages[message_id]
            self._in_flight -= message.visible_at > self._sim.now
            self._note()

    def retry_after(self, receipt: str, seconds: float) -> None:
        message_id, handle = map(int, receipt.split(":"))
        message = self.messages.get(message_id)
        if message is not None and message.handle == handle and message.visible_at > self._sim.now:
            message.visible_at = self._sim.now + seconds
            heapq.heappush(self._later, (message.visible_at, message_id, handle))
            self._sim.at(message.visible_at, self._wake)

    def backlog(self) -> int:
        """What GetQueueAttributes says: the count as it was a minute ago."""
        moment = self._sim.now - SQS_COUNT_LAG_SECONDS
        while len(self._history) > 1 and self._history[1][0] <= moment:
            self._history.popleft()
        return self._history[0][1]

    @property
    def size(self) -> int:
        return len(self.messages)

    def _release(self) -> None:
        while self._later and self._later[0][0] <= self._sim.now:
            visible_at, message_id, handle = heapq.heappop(self._later)
            message = self.messages.get(message_id)
            if message is None or message.handle != handle or message.visible_at != visible_at:
                continue
            if handle:
                self._in_flight -= 1
            self._ready.append(message_id)

    def _note(self) -> None:
        self._history.append((self._sim.now, len(self.messages)))

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
        self._requests(len(receipts))
        for receipt in receipts:
            self._queue.retry_after(receipt, seconds)

    def backlog(self) -> int:
        self._requests(1)
        return self._queue.backlog()


# ---------------------------------------------------------------------------
# Lambda.


@dataclass
class _Environment:
    services: Services
    warm: bool = False
    idle_since: float = 0.0


class Stage:
    """The simulated stage: bucket, records, collection, queue, workers, re-drive."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.sim = Simulator(scenario.seed)
        self.counts = Counts()
        env = {"FACEPRINT_STAGE": "sim", "FACEPRINT_INDEX_TPS": str(scenario.tps)}
        self.settings = Settings.from_env(env)
        quota = scenario.quota or scenario.tps
        self.rekognition_quota = TokenBucket(quota, max(1.0, quota * scenario.burst_seconds))
        self.bucket = SimBucket(self.sim, self.counts, self._event)
        self.records = SimRecords(self.sim, self.counts, self._none_pending)
        self.engine = FakeEngine(self.bucket)
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
        )
        self._idle: list[_Environment] = []
        self.running = 0
        self.uploaded = 0
        self.settled_at: float | None = None

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

    # The uploads.

    def upload(self, index: int) -> None:
        key = f"photos/{index:06d}.png"
        indexing.upload_image(self.base, key, photo_of(f"person {index}"), {})
        self.uploaded += 1

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

        def run() -> None:
            try:
                if not environment.warm:
                    counts.cold_starts += 1
                    sim.sleep(0.8)
                    environment.warm = True
                seconds_left = lambda: self.scenario.worker_timeout - (sim.now - started)  # noqa: E731
                summary = index_queue.handle_batch(environment.services, messages, seconds_left, rng=sim.rng)
                counts.throttled_batches += summary["throttled"]
                outcome.append("ok")
            except BatchFailed:
                outcome.append("failed")
            except Killed:
                outcome.append("killed")
            finally:
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

    def _environment(self) -> _Environment:
        while self._idle:
            environment = self._idle.pop()
            if environment.warm and self.sim.now - environment.idle_since < ENVIRONMENT_IDLE_SECONDS:
                return environment
        engine = SimRekognition(self.sim, self.engine, self.rekognition_quota, self.counts, self.scenario)
        pace = Pace(
            self.settings.index_interval, clock=lambda: self.sim.now, sleep=self.sim.sleep, jitter=self.sim.rng.random
        )
        return _Environment(replace(self.base, engine=PacedEngine(engine, pace)))

    def event_source(self) -> None:
        """Pollers: 5 at first, then up to 300 more a minute, up to the
        maximum concurrency."""
        workers = self.settings.workers
        for number in range(workers):
            start = 0.0 if number < FIRST_POLLERS else (number - FIRST_POLLERS + 1) * 60 / POLLERS_PER_MINUTE
            self.sim.spawn(lambda number=number: self.poller(number), delay=start)

    # The scheduled re-drive.

    def redrive(self) -> None:
        sim = self.sim
        started = sim.now
        self.counts.invocations += 1
        self.counts.redrive_runs += 1
        result = index_queue.redrive_lost(self.base, moment=sim.iso())
        self.counts.redriven += result["redriven"]
        self.counts.gb_seconds += (sim.now - started + 0.05) * self.scenario.redrive_memory_mb / 1024
        sim.spawn(self.redrive, delay=index_queue.REDRIVE_EVERY_SECONDS - (sim.now - started))

    # Running it.

    def _none_pending(self) -> None:
        if self.uploaded == self.scenario.photos:
            self.settled_at = self.sim.now  # the last photo's status became final (for now)

    def settled(self) -> bool:
        """Every photo final, the queue empty, no invocation running."""
        if self.uploaded < self.scenario.photos or self.records.pending:
            return False
        return self.queue.size == 0 and self.running == 0

    def minimum_seconds(self) -> float:
        """The quota-limited minimum: one IndexFaces a photo at the quota,
        not before the last upload."""
        quota = self.scenario.quota or self.scenario.tps
        last_upload = (self.scenario.photos - 1) / self.scenario.upload_rate if self.scenario.upload_rate else 0.0
        return max(self.scenario.photos / quota, last_upload + 1 / quota)

    def run(self) -> "Result":
        scenario, sim = self.scenario, self.sim
        with _quiet():
            for index in range(scenario.photos):
                at = index / scenario.upload_rate if scenario.upload_rate else 0.0
                sim.spawn(lambda index=index: self.upload(index), delay=at)
            self.event_source()
            sim.spawn(self.redrive, delay=index_queue.REDRIVE_EVERY_SECONDS)
            horizon = max(3 * self.minimum_seconds(), self.minimum_seconds() + 2 * 3600)
            sim.run(self.settled, horizon)
        return self.result()

    def result(self) -> "Result":
        statuses: dict[str, int] = {}
        for image in self.records.images.values():
            statuses[image["status"]] = statuses.get(image["status"], 0) + 1
        recorded = set(self.records.faces)
        collection = set(self.engine.faces)
        return Result(
            scenario=self.scenario,
            workers=self.settings.workers,
            interval=self.settings.index_interval,
            statuses=statuses,
            failed_reasons=sorted({i.get("error", "") for i in self.records.images.values() if i["status"] == FAILED}),
            settled_seconds=self.settled_at
            if self.settled_at is not None and not self.records.pending
            else self.sim.now,
            all_final=self.uploaded == self.scenario.photos and not self.records.pending,
            minimum_seconds=self.minimum_seconds(),
            dead_letters=len(self.queue.dead),
            left_in_queue=self.queue.size,
            stray_faces=len(collection - recorded),
            missing_faces=len(recorded - collection),
            counts=self.counts,
        )


@dataclass
class Result:
    scenario: Scenario
    workers: int
    interval: float
    statuses: dict[str, int]
    failed_reasons: list[str]
    settled_seconds: float
    all_final: bool
    minimum_seconds: float
    dead_letters: int
    left_in_queue: int
    stray_faces: int
    missing_faces: int
    counts: Counts

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
    def ratio(self) -> float:
        return self.settled_seconds / self.minimum_seconds

    @property
    def invocations_per_photo(self) -> float:
        return (self.counts.invocations - self.counts.redrive_runs) / self.scenario.photos

    @property
    def calls_per_photo(self) -> float:
        return self.counts.index_calls / self.scenario.photos

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
        costs = self.costs()
        settled = "" if self.all_final else ": NOT SETTLED"
        lines = [
            f"simulate-aws: {s.photos:,} photos uploaded {arrival},"
            f" FACEPRINT_INDEX_TPS={s.tps:g}{quota}, seed {s.seed}",
            f"  workers: {self.workers} (the queue's maximum concurrency), each IndexFaces {self.interval:.2f} s apart",
            f"  settled after {_duration(self.settled_seconds)}; quota-limited minimum"
            f" {_duration(self.minimum_seconds)} ({self.ratio:.3f}x){settled}",
            f"  photos: {self.indexed:,} indexed, {self.failed:,} failed, {self.pending:,} pending;"
            f" {self.dead_letters:,} in the dead-letter queue, {self.left_in_queue:,} left in the queue",
            f"  Lambda: {c.invocations - c.redrive_runs:,} worker invocations"
            f" ({self.invocations_per_photo:.3f} a photo), {c.failed_invocations:,} failed,"
            f" {c.killed_invocations:,} killed, {c.cold_starts:,} cold starts, peak concurrency {c.peak_concurrency};"
            f" {c.redrive_runs:,} re-drive runs sent {c.redriven:,} photos",
            f"  IndexFaces: {c.index_calls:,} calls ({self.calls_per_photo:.4f} a photo), {c.throttled:,} throttled,"
            f" {c.index_errors:,} failed with a 5xx; {c.throttled_batches:,} batches sent back throttled",
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
