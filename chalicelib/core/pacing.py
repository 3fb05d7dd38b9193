"""The pace of Rekognition's rate quotas, and the indexing's circuit breaker.

Rekognition allows each account so many calls a second of each operation
in a region (IndexFaces, DeleteFaces, SearchFacesByImage: 5 in most
regions, 50 in the large ones), and publishes neither how much of a burst
it allows nor how long a call takes. So the calls of one operation are not
spaced by each function on its own (two workers whose turns fall close
together would overrun a quota with no burst), but by one schedule that
every function of the stage shares (SharedState: on AWS an item of a
DynamoDB table): a caller takes the next turn, one every 1/rate seconds
(a generic cell rate, one conditional write a call), and waits for it.
Functions that run many calls at once (the queue's workers) then keep to
the quota whatever each call's latency, and stages that share an account
and region can share one schedule (docs/deploy.md, "Indexing at volume").

The rate adapts, additive increase and multiplicative decrease: a throttle
that still comes (another application on the account, a smaller quota
than the setting says) halves it, down to FLOOR_SHARE of the quota, and it
climbs back to the quota over RECOVERY_SECONDS while none comes. The cut is
on the shared item, so every caller slows down at once.

The circuit breaker is the indexing's (core/index_queue.py): when a service
fails for every photo (Rekognition, DynamoDB or S3 answering 5xx, timing
out), the failure is the service's, not the photo's. A failure counts
against its photo only while others succeed; when other photos failed just
before with none indexed since, the breaker opens: the workers wait (a
cool-down doubling from COOLDOWN_SECONDS to MAX_COOLDOWN_SECONDS) and
hand their messages back uncounted, then try again; the first success
closes it. A breaker that cannot be read (DynamoDB itself failing) counts
as open.

The clock (seconds since the epoch), the sleep and the shared state are
parameters: the simulation (chalicelib/ops/aws_volume.py) runs this very
code on a virtual clock."""

import contextlib
import contextvars
import logging
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from chalicelib.core.config import AWS_CALL_ATTEMPTS
from chalicelib.core.errors import ServiceUnavailable, Throttled, TooManyRequests
from chalicelib.core.naming import StrangerModel
from chalicelib.core.ports import FaceEngine, Page, PhotoVersion, SharedState

log = logging.getLogger("faceprint")
T = TypeVar("T")

# The adaptive rate: halved by a throttle, at most once per CUT_GAP_SECONDS
# (the throttles of calls already under way when it was cut do not cut it
# again), never below FLOOR_SHARE of the quota; back to the quota over
# RECOVERY_SECONDS without throttles.
CUT = 0.5
CUT_GAP_SECONDS = 2.0
FLOOR_SHARE = 0.01
RECOVERY_SECONDS = 20.0
TURN_LEAD_SECONDS = 0.02
# botocore's standard backoff before a further attempt: up to this x 2^(attempt - 1).
BACKOFF_SECONDS = 1.0
# How long an API request waits for its turn before it is told to retry:
# a search (429), a delete (503; its photo's ObjectRemoved event finishes it).
API_WAIT_SECONDS = 2.0
# The breaker: a failure is the service's when another photo failed within
# WINDOW_SECONDS before it and none succeeded since; it then stays open
# for a cool-down that doubles while the failures go on.
WINDOW_SECONDS = 120.0
COOLDOWN_SECONDS = 15.0
MAX_COOLDOWN_SECONDS = 300.0
# A worker records its successes at most this often (one write), and
# always when the breaker is open (the first success closes it).
NOTE_EVERY_SECONDS = 10.0

INDEX_FACES, DELETE_FACES, SEARCH_FACES = "IndexFaces", "DeleteFaces", "SearchFacesByImage"
BREAKER = "breaker"
COLLECTION = "collection"  # the collection's room, as the re-drive last found it (every minute)

# The latest a call of this context may start (seconds since the epoch):
# an indexing worker sets it from its invocation's time left.
_latest: contextvars.ContextVar[float | None] = contextvars.ContextVar("latest_turn", default=None)


class NoTurn(Throttled):
    """No turn on the quota's schedule before the caller's deadline."""

    def __init__(self, message: str, wait: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = max(1, math.ceil(wait))


@contextlib.contextmanager
def turns_until(latest: float) -> Iterator[None]:
    """Calls made inside wait for their turn until `latest` at most."""
    token = _latest.set(latest)
    try:
        yield
    finally:
        _latest.reset(token)


def schedule_name(operation: str, region: str | None) -> str:
    """The shared item of an operation's quota (per account and region)."""
    return f"pace:{region or 'default'}:{operation}"


class SharedPace:
    """One quota's schedule (see the module's docstring): `rate` calls a
    second at most, shared through `state`'s item `name`."""

    def __init__(
        self,
        state: SharedState,
        name: str,
        rate: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        wait: float = API_WAIT_SECONDS,
    ) -> None:
        self.state, self.name, self.rate = state, name, rate
        self._clock, self._sleep, self._wait = clock, sleep, wait
        self._item: dict = {}  # the item as the last turn left it

    def rate_now(self, now: float, item: dict | None = None) -> float:
        """The adaptive rate (calls a second) at `now`."""
        item = self._item if item is None else item
        cut, since = item.get("cutRate"), item.get("cutAt")
        if cut is None or since is None:
            return self.rate
        return min(self.rate, cut + self.rate * max(0.0, now - since) / RECOVERY_SECONDS)

    def take(self, latest: float | None = None) -> float:
        """Wait for the next turn; returns the seconds waited. Raises NoTurn
        when it would come after `latest` (default: this context's deadline,
        else `wait` seconds from now)."""
        now = self._clock()
        if latest is None:
            latest = _latest.get()
        if latest is None:
            latest = now + self._wait
        step = 1.0 / self.rate_now(now)
        # A turn starts TURN_LEAD_SECONDS from now at the soonest: the
        # reservation's own round trip is over by then, so every call goes
        # at its turn's start, never late into the next one's.
        start, self._item = self.state.reserve(self.name, now + TURN_LEAD_SECONDS, step, latest)
        if start is None:
            wait = (self._item.get("tat") or now) - now
            raise NoTurn(
                f"{self.name}: no turn within its quota for {wait:.0f} s; retry after a pause.",
                (self._item.get("tat") or now) - latest,
            )
        delay = start - self._clock()
        if delay > 0:
            self._sleep(delay)
        return max(0.0, delay)

    def throttled(self) -> None:
        """A call was throttled all the same: slow every caller down."""
        now = self._clock()
        item = self.state.read(self.name)
        if now - (item.get("cutAt") or -math.inf) < CUT_GAP_SECONDS:
            return
        cut = max(self.rate * FLOOR_SHARE, self.rate_now(now, item) * CUT)
        written = self.state.update(self.name, {"cutRate": cut, "cutAt": now}, only_if={"cutAt": item.get("cutAt")})
        if written is not None:
            self._item = written
            log.info("%s throttled: the pace is cut to %.2f a second", self.name, cut)


@dataclass
class Breaker:
    """The indexing's circuit breaker (see the module's docstring), kept in
    `state`'s item BREAKER: when the last success and the last failure
    were (okAt, failAt, failKey), how many photos were done (`done`, for
    the re-drive's alarm), and until when it is open."""

    state: SharedState
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self._item: dict = {}
        self._read_at = -math.inf
        self._unnoted = 0
        self._ok_key: str | None = None

    def wait_closed(self, latest: float) -> float:
        """Wait while the breaker is open, until `latest` at most. Returns 0
        when it is closed, else the seconds until it closes (a message
        handed back now should come back after them). A breaker that
        cannot be read counts as open."""
        while True:
            now = self.clock()
            try:
                item = self._fresh(now)
            except ServiceUnavailable:
                if now + COOLDOWN_SECONDS > latest:
                    return COOLDOWN_SECONDS
                self.sleep(COOLDOWN_SECONDS)
                continue
            opened = (item.get("openUntil") or 0) - now
            if opened <= 0:
                return 0.0
            if now >= latest:
                return opened
            self.sleep(min(opened, latest - now))
            self._read_at = -math.inf  # read it again: someone may have closed it

    def succeeded(self, key: str | None = None) -> None:
        """One photo done: noted on the shared item now and then (with a
        photo the service works for: `key`)."""
        self._unnoted += 1
        self._ok_key = key or self._ok_key
        now = self.clock()
        if self._item.get("openUntil") or now - (self._item.get("okAt") or -math.inf) >= NOTE_EVERY_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Note the successes not noted yet (at the end of a batch)."""
        if not self._unnoted:
            return
        now = self.clock()
        try:
            values = {"okAt": now, "openUntil": None, "cooldown": None, "okKey": self._ok_key}
            self._item = self.state.update(BREAKER, values, add={"done": self._unnoted}) or self._item
            self._read_at = now
            self._unnoted = 0
        except ServiceUnavailable:
            pass  # noted with the next one

    def failed(self, key: str, probe: Callable[[str], bool | None] = lambda key: None) -> bool:
        """A message of photo `key` failed with a service's failure. True
        when it counts against the photo (others succeed); False when the
        service fails for every photo: the breaker opens (or stays open).
        Before it opens, `probe` tries the service on a photo indexed
        before (a read-only call): if that works, the failure is this
        photo's after all (a few bad photos failing one after the other
        are no outage); None when it could not tell."""
        now = self.clock()
        try:
            item = self.state.read(BREAKER)
        except ServiceUnavailable:
            return False  # the shared state fails too: the service's failure
        outage = is_outage(item, key, now)
        values: dict = {"failAt": now, "failKey": key}
        if outage and not _opened_recently(item, now) and item.get("okKey") not in (None, key):
            works = probe(item["okKey"])
            if works is not False:
                outage = False
                if works:
                    values["okAt"] = now  # the service works for another photo
        if outage:
            cooldown = min(MAX_COOLDOWN_SECONDS, 2 * (item.get("cooldown") or COOLDOWN_SECONDS / 2))
            if (item.get("openUntil") or 0) <= now:
                values.update({"openUntil": now + cooldown, "openedAt": now, "cooldown": cooldown})
                log.warning("the indexing's services fail for every photo: waiting %.0f s", cooldown)
        try:
            self._item = self.state.update(BREAKER, values) or item
            self._read_at = now
        except ServiceUnavailable:
            return False
        return not outage

    def _fresh(self, now: float) -> dict:
        if now - self._read_at >= NOTE_EVERY_SECONDS or (self._item.get("openUntil") or 0) > now:
            self._item = self.state.read(BREAKER)
            self._read_at = now
        return self._item


def _opened_recently(item: dict, now: float) -> bool:
    """The breaker opened within WINDOW_SECONDS, with none done since."""
    opened_at, ok_at = item.get("openedAt"), item.get("okAt")
    return opened_at is not None and opened_at >= now - WINDOW_SECONDS and (ok_at is None or ok_at < opened_at)


def is_outage(item: dict, key: str, now: float) -> bool:
    """Whether a failure of photo `key` at `now` is the service's: another
    photo failed within WINDOW_SECONDS with none done since, or the breaker
    opened within WINDOW_SECONDS with none done since."""
    ok_at, fail_at = item.get("okAt"), item.get("failAt")
    others_failing = (
        fail_at is not None
        and fail_at >= now - WINDOW_SECONDS
        and item.get("failKey") != key
        and (ok_at is None or ok_at < fail_at)
    )
    return others_failing or _opened_recently(item, now)


@dataclass
class Pacing:
    """A stage's schedules and breaker (wiring.py builds it on AWS). The
    schedules are kept in `paces` when given (a state that stages of one
    account and region share: FACEPRINT_PACE_TABLE), else in `state`; the
    stage's own items (the breaker, the re-drive's and the check's places)
    always in `state`: another stage's photos, collection and check are
    not this one's."""

    state: SharedState
    index_tps: float
    delete_tps: float
    search_tps: float
    region: str | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random
    paces: SharedState | None = None

    def __post_init__(self) -> None:
        self.index = self._pace(INDEX_FACES, self.index_tps)
        self.delete = self._pace(DELETE_FACES, self.delete_tps)
        self.search = self._pace(SEARCH_FACES, self.search_tps)
        self.breaker = Breaker(self.state, self.clock, self.sleep)
        self._room: int | None = None
        self._room_read_at = -math.inf

    def _pace(self, operation: str, rate: float) -> SharedPace:
        paces = self.state if self.paces is None else self.paces
        return SharedPace(paces, schedule_name(operation, self.region), rate, self.clock, self.sleep)

    def call(self, pace: SharedPace, call: Callable[[], T]) -> T:
        """`call` (one attempt at a paced operation: its client makes no
        retries of its own) with botocore's standard retries, each attempt
        on a turn of its own: a throttle cuts the pace and tries again on
        the next turn, a service's failure (5xx, a timeout) after
        botocore's backoff; AWS_CALL_ATTEMPTS in all. NoTurn when no turn
        comes before the caller's deadline."""
        for attempt in range(1, AWS_CALL_ATTEMPTS + 1):
            pace.take()
            try:
                return call()
            except NoTurn:
                raise
            except Throttled:
                pace.throttled()
                if attempt == AWS_CALL_ATTEMPTS:
                    raise
            except ServiceUnavailable:
                if attempt == AWS_CALL_ATTEMPTS:
                    raise
                self.sleep(self.random() * BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def note_room(self, room: int | None) -> None:
        """The collection's room (the re-drive, every minute)."""
        if room is not None:
            self.state.update(COLLECTION, {"room": room, "at": self.clock()})

    def collection_full(self) -> bool:
        """Whether the collection had no room at the re-drive's last look
        (read at most once a minute in a function)."""
        now = self.clock()
        if now - self._room_read_at >= 60:
            self._room = self.state.read(COLLECTION).get("room")
            self._room_read_at = now
        return self._room is not None and self._room <= 0

    def search_call(self, call: Callable[[], T]) -> T:
        """A SearchFacesByImage on the stage's one search budget, whatever
        the route or the method. TooManyRequests (429) when no turn comes
        within API_WAIT_SECONDS."""
        try:
            return self.call(self.search, call)
        except NoTurn as e:
            raise TooManyRequests(
                f"Searches are over the stage's budget of {self.search_tps:g} a second "
                "(its SearchFacesByImage quota, FACEPRINT_SEARCH_TPS); retry after a pause.",
                e.retry_after_seconds,
            ) from e


class PacedEngine(FaceEngine):
    """A FaceEngine whose IndexFaces and DeleteFaces calls each take a turn
    on their quota's schedule, each attempt (Pacing.call); everything else
    goes straight through (the searches take theirs inside the adapter, one
    per SearchFacesByImage: Pacing.search_call)."""

    def __init__(self, engine: FaceEngine, pacing: Pacing) -> None:
        self.engine = engine
        self.pacing = pacing

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        return self.pacing.call(self.pacing.index, lambda: self.engine.index_faces(photo, external_image_id))

    def delete_faces(self, face_ids: list[str]) -> None:
        if face_ids:
            self.pacing.call(self.pacing.delete, lambda: self.engine.delete_faces(face_ids))

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        return self.engine.search_faces_by_image(data, threshold, max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        return self.engine.search_all_faces_by_image(data, threshold, max_faces)

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        return self.engine.list_faces(limit, token)

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        return self.engine.list_face_ids(limit, token)

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        return self.engine.get_faces(face_ids)

    def face_count(self) -> int:
        return self.engine.face_count()

    def room_left(self) -> int | None:
        return self.engine.room_left()

    def probe(self, key: str) -> bool | None:
        return self.engine.probe(key)

    def stranger_model(self) -> StrangerModel:
        return self.engine.stranger_model()

    def describe(self) -> dict:
        return self.engine.describe()


class InMemoryState(SharedState):
    """SharedState in this process: tests, the simulation, and a stage
    whose functions all run in one process."""

    def __init__(self) -> None:
        self.items: dict[str, dict] = {}

    def reserve(self, name: str, now: float, step: float, latest: float) -> tuple[float | None, dict]:
        item = self.items.setdefault(name, {})
        start = max(now, item.get("tat") or now)
        if start > latest:
            return None, dict(item)
        item["tat"] = start + step
        return start, dict(item)

    def hold_until(self, name: str, until: float, values: dict | None = None) -> dict:
        item = self.items.setdefault(name, {})
        item["tat"] = max(until, item.get("tat") or until)
        _set(item, values or {})
        return dict(item)

    def read(self, name: str) -> dict:
        return dict(self.items.get(name, {}))

    def update(
        self, name: str, values: dict | None = None, add: dict | None = None, only_if: dict | None = None
    ) -> dict | None:
        item = self.items.setdefault(name, {})
        if any(item.get(field) != value for field, value in (only_if or {}).items()):
            return None
        _set(item, values or {})
        for field, amount in (add or {}).items():
            item[field] = (item.get(field) or 0) + amount
        return dict(item)


def _set(item: dict, values: dict) -> None:
    for field, value in values.items():
        if value is None:
            item.pop(field, None)
        else:
            item[field] = value


def is_service_failure(error: Exception) -> bool:
    """A failure that may be the service's rather than the photo's: a
    ServiceUnavailable that is no throttle (5xx after botocore's retries, a
    timeout, a call that could not connect)."""
    return isinstance(error, ServiceUnavailable) and not isinstance(error, Throttled)
