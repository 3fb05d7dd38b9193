"""The pace of Rekognition's quotas and the indexing's circuit breaker
(core/pacing.py) on a fake clock, and the stage settings they come from
(FACEPRINT_INDEX_TPS: how many workers, FACEPRINT_DELETE_TPS,
FACEPRINT_SEARCH_TPS)."""

import pytest

from chalicelib.core import pacing
from chalicelib.core.config import MAX_WORKERS, Settings, index_workers_at_import, worst_call_seconds
from chalicelib.core.errors import ConfigurationError, ServiceUnavailable, Throttled, TooManyRequests
from chalicelib.core.pacing import BREAKER, Breaker, InMemoryState, NoTurn, PacedEngine, Pacing, SharedPace
from chalicelib.core.ports import PhotoVersion
from chalicelib.ops.memory import FakeEngine, InMemoryPhotoStore, photo_of


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


def pace_of(state, clock, rate: float = 5.0) -> SharedPace:
    return SharedPace(state, "pace:test:IndexFaces", rate, clock=lambda: clock.now, sleep=clock.sleep)


def test_callers_sharing_a_schedule_take_turns_one_step_apart(clock):
    state = InMemoryState()
    workers = [pace_of(state, clock) for _ in range(3)]  # three functions, one schedule
    starts = []
    for worker in workers * 2:
        worker.take(latest=clock.now + 10)
        starts.append(round(clock.now, 6))
    lead = pacing.TURN_LEAD_SECONDS  # a turn comes no sooner: the reservation's round trip is over then
    assert starts == [round(1000 + lead + 0.2 * n, 6) for n in range(6)]
    clock.now += 10  # idle: the next turn is at once
    assert workers[0].take(latest=clock.now + 1) == pytest.approx(lead)


def test_no_turn_after_the_callers_latest_is_no_turn_taken(clock):
    state = InMemoryState()
    worker = pace_of(state, clock, rate=1.0)
    worker.take(latest=clock.now + 10)
    with pytest.raises(NoTurn) as raised:
        worker.take(latest=clock.now + 0.5)
    assert isinstance(raised.value, Throttled) and raised.value.retry_after_seconds == 1
    assert worker.take(latest=clock.now + 1) == 1.0  # the turn was still free


def test_a_throttle_halves_the_pace_of_every_caller_and_it_climbs_back(clock):
    state = InMemoryState()
    one, other = pace_of(state, clock), pace_of(state, clock)
    one.take()
    one.throttled()
    one.throttled()  # a throttle of a call already under way: one cut
    assert one.rate_now(clock.now, state.read(one.name)) == 2.5
    other.take()  # the other caller learns of the cut with its next turn
    clock.now += pacing.RECOVERY_SECONDS / 4
    since = clock.now - state.read(one.name)["cutAt"]
    assert other.rate_now(clock.now) == pytest.approx(2.5 + 5 * since / pacing.RECOVERY_SECONDS)
    clock.now += pacing.RECOVERY_SECONDS
    assert other.rate_now(clock.now) == 5.0
    for _ in range(20):
        clock.now += pacing.CUT_GAP_SECONDS
        one.throttled()
    assert 5 * pacing.FLOOR_SHARE <= one.rate_now(clock.now, state.read(one.name)) <= 1.0  # throttled on and on


def test_each_attempt_of_a_paced_call_takes_a_turn_and_a_throttle_cuts_the_pace(clock):
    stage = Pacing(InMemoryState(), index_tps=2, delete_tps=1, search_tps=5, clock=lambda: clock.now, sleep=clock.sleep)
    outcomes = iter([Throttled("busy"), ServiceUnavailable("5xx"), "indexed"])

    def call():
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    stage.random = lambda: 0.5
    assert stage.call(stage.index, call) == "indexed"
    item = stage.state.read(stage.index.name)
    assert item["cutRate"] == 1.0  # the throttle halved the pace
    # turns: at once, 0.5 s later (the cut comes after), then botocore's backoff (0.5 x 2) and a turn
    assert [round(s, 6) for s in clock.slept] == [pacing.TURN_LEAD_SECONDS, 0.5, 1.0, pacing.TURN_LEAD_SECONDS]
    down = iter([ServiceUnavailable("5xx")] * 10)
    with pytest.raises(ServiceUnavailable):
        stage.call(stage.delete, lambda: (_ for _ in ()).throw(next(down)))


def test_a_paced_engine_paces_index_faces_and_delete_faces_on_their_own_schedules(clock):
    photos = InMemoryPhotoStore()
    stored = photos.put("k.png", photo_of("ada"), "image/png", {})
    stage = Pacing(InMemoryState(), index_tps=2, delete_tps=1, search_tps=5, clock=lambda: clock.now, sleep=clock.sleep)
    engine = PacedEngine(FakeEngine(photos), stage)
    for _ in range(3):
        engine.index_faces(PhotoVersion("k.png", stored.etag, stored.version_id), "k.png")
    lead = pacing.TURN_LEAD_SECONDS
    assert [round(s, 6) for s in clock.slept] == [lead, 0.5, 0.5]
    engine.delete_faces(["x"])
    engine.delete_faces(["y"])
    engine.delete_faces([])  # no call, no turn
    assert [round(s, 6) for s in clock.slept] == [lead, 0.5, 0.5, lead, 1.0]
    engine.search_faces_by_image(photo_of("ada"), 80, 10)  # searches take their turn in the adapter
    engine.describe()
    assert len(clock.slept) == 5


def test_the_search_budget_is_one_for_every_route_and_says_when_to_retry(clock):
    """Requests at once (each its own function: none waits for another):
    2 a second, each waiting up to API_WAIT_SECONDS for its turn; beyond, 429."""
    waits = []
    stage = Pacing(
        InMemoryState(), index_tps=5, delete_tps=5, search_tps=2, clock=lambda: clock.now, sleep=waits.append
    )
    for _ in range(4):
        assert stage.search_call(lambda: "matches") == "matches"
    with pytest.raises(TooManyRequests) as raised:
        stage.search_call(lambda: "matches")
    assert raised.value.status == 429 and raised.value.retry_after_seconds == 1
    assert "FACEPRINT_SEARCH_TPS" in raised.value.message
    lead = pacing.TURN_LEAD_SECONDS
    assert [round(w, 6) for w in waits] == [lead, lead + 0.5, lead + 1.0, lead + 1.5]
    clock.now += 3
    stage.search_call(lambda: "matches")  # a turn again once the budget refilled


def test_a_breaker_counts_a_failure_against_its_photo_while_others_succeed(clock):
    breaker = Breaker(InMemoryState(), lambda: clock.now, clock.sleep)
    breaker.succeeded()
    clock.now += 1
    assert breaker.failed("a.jpg")  # counted: others are indexed
    clock.now += 1
    breaker.succeeded()
    breaker.flush()
    clock.now += 1
    assert breaker.failed("b.jpg")  # counted: a success since a.jpg failed
    assert breaker.failed("b.jpg")  # its own failure again says nothing about the service
    assert breaker.wait_closed(clock.now + 100) == 0


def test_a_breaker_opens_when_photos_fail_one_after_the_other_and_a_success_closes_it(clock):
    state = InMemoryState()
    one, other = Breaker(state, lambda: clock.now, clock.sleep), Breaker(state, lambda: clock.now, clock.sleep)
    assert one.failed("a.jpg")  # nothing known yet: counted
    clock.now += 2
    assert not other.failed("b.jpg")  # another photo failed just before, none done since: the service's
    item = state.read(BREAKER)
    assert item["openUntil"] == clock.now + pacing.COOLDOWN_SECONDS
    clock.now += 1
    assert not one.failed("c.jpg")
    waited = one.wait_closed(clock.now + 5)  # waits what it may, then says how long is left
    assert waited == pytest.approx(pacing.COOLDOWN_SECONDS - 1 - 5)
    assert one.wait_closed(clock.now + 100) == 0  # open until then, and no later
    assert not other.failed("d.jpg")  # failing again once it closed: open again, longer
    assert state.read(BREAKER)["cooldown"] == 2 * pacing.COOLDOWN_SECONDS
    other.succeeded()
    assert "openUntil" not in state.read(BREAKER) and state.read(BREAKER)["done"] == 1


def test_a_breaker_that_cannot_be_read_counts_as_open(clock):
    class Down(InMemoryState):
        def read(self, name):
            from chalicelib.core.errors import ServiceUnavailable

            raise ServiceUnavailable("DynamoDB failed on AWS's side")

    breaker = Breaker(Down(), lambda: clock.now, clock.sleep)
    assert not breaker.failed("a.jpg")
    assert breaker.wait_closed(clock.now + 1) == pacing.COOLDOWN_SECONDS


def test_a_worker_keeps_one_calls_worst_case_in_reserve():
    from chalicelib.core import index_queue

    assert worst_call_seconds() == 4 * (5 + 20) + 1 + 2 + 4
    assert worst_call_seconds() < index_queue.RESERVE_SECONDS


@pytest.mark.parametrize(
    ("tps", "workers", "interval"),
    [("5", 10, 2.0), ("50", 100, 2.0), ("0.5", 2, 4.0), ("2.5", 5, 2.0), ("1000", 1000, 1.0)],
)
def test_the_index_tps_makes_twice_as_many_workers_as_calls_a_second(tps, workers, interval):
    settings = Settings.from_env({"FACEPRINT_INDEX_TPS": tps})
    assert settings.workers == workers and settings.index_interval == pytest.approx(interval)


def test_the_defaults_are_the_smallest_regions_quotas():
    settings = Settings.from_env({})
    assert (settings.index_tps, settings.delete_tps, settings.search_tps, settings.workers) == (5.0, 5.0, 5.0, 10)
    assert settings.pace_table == ""


def test_the_workers_can_be_set():
    settings = Settings.from_env({"FACEPRINT_INDEX_TPS": "1000", "FACEPRINT_INDEX_WORKERS": "2"})
    assert settings.workers == 2


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FACEPRINT_INDEX_TPS", "0"),
        ("FACEPRINT_INDEX_TPS", "fast"),
        ("FACEPRINT_INDEX_TPS", "5000"),
        ("FACEPRINT_SEARCH_TPS", "-1"),
        ("FACEPRINT_DELETE_TPS", "0"),
        ("FACEPRINT_INDEX_WORKERS", "1"),
        ("FACEPRINT_INDEX_WORKERS", str(MAX_WORKERS + 1)),
    ],
)
def test_a_bad_pace_setting_is_refused_by_name(name, value):
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_env({name: value})


def test_the_workers_declared_at_import_never_raise():
    assert index_workers_at_import({"FACEPRINT_INDEX_TPS": "50"}) == 100
    assert index_workers_at_import({"FACEPRINT_INDEX_TPS": "fast"}) == 10  # Settings refuses it at the first request
