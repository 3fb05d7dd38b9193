"""The indexing queue's workers and re-drive over the in-memory fakes
(core/index_queue.py), on a fake clock: each message of a batch indexed or
removed and deleted as soon as it is done, the batch held by a heartbeat,
a throttle tried again uncounted, a service failing for every photo
counted against none (the circuit breaker), other failures counted by the
queue's receives until the photo ends `failed`, a message that kills its
worker isolated so its batch-mates never reach the dead-letter queue, lost
events re-driven once no message waits. Milliseconds each."""

import json
import threading
import time
from dataclasses import replace
from urllib.parse import quote_plus

import pytest

from chalicelib.core import index_queue, indexing, pacing
from chalicelib.core.errors import CollectionFull, InvalidImage, ServiceUnavailable, Throttled
from chalicelib.core.index_queue import (
    CREATED,
    REMOVED,
    BatchFailed,
    Heartbeat,
    decode,
    redrive_body,
    redrive_lost,
)
from chalicelib.core.pacing import BREAKER, InMemoryState, PacedEngine, Pacing
from chalicelib.core.ports import IndexQueue, QueueDepth, QueuedMessage
from chalicelib.core.records import iso_before, now
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of


class RecordingQueue(IndexQueue):
    """What a worker asked of the queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []  # (body, delay)
        self.deleted: list[str] = []
        self.visibility: list[tuple[str, int]] = []
        self.waiting = 0
        self.in_flight = 0

    def send(self, bodies: list[str], delay_seconds: int = 0) -> None:
        self.sent += [(body, delay_seconds) for body in bodies]

    def delete(self, receipts: list[str]) -> None:
        self.deleted += receipts

    def retry_after(self, receipts: list[str], seconds: int) -> None:
        self.visibility += [(receipt, seconds) for receipt in receipts]

    def depth(self) -> QueueDepth:
        return QueueDepth(self.waiting, self.in_flight, 0)


class Holding:
    """The heartbeat without its thread: what it holds."""

    def __init__(self, queue: IndexQueue, receipts: list[str]) -> None:
        self.held = list(receipts)
        queue.retry_after(receipts, index_queue.HOLD_SECONDS)

    def __enter__(self) -> "Holding":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def release(self, receipt: str) -> None:
        self.held.remove(receipt)


class Failing:
    """Wraps the engine: its index_faces (or delete_faces) raises `error`
    for the keys in `keys` (all when None), the first `times` calls (all
    when None)."""

    def __init__(self, engine, error: BaseException, keys: set[str] | None = None, times: int | None = None):
        self._engine, self._error, self._keys, self._times = engine, error, keys, times
        self.tried = 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def index_faces(self, photo, external_image_id):
        self.tried += 1
        if (self._keys is None or photo.key in self._keys) and self._fails():
            raise self._error
        return self._engine.index_faces(photo, external_image_id)

    def delete_faces(self, face_ids):
        if self._keys == {"DeleteFaces"} and self._fails():
            raise self._error
        return self._engine.delete_faces(face_ids)

    def _fails(self) -> bool:
        if self._times is None:
            return True
        self._times -= 1
        return self._times >= 0


class Killed(BaseException):
    """Lambda ends the invocation: the worker's code cannot catch it."""


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def svc(clock):
    pace = Pacing(InMemoryState(), 5, 5, 5, clock=lambda: clock.now, sleep=clock.sleep)
    return replace(fake_services(index_on_upload=False), queue=RecordingQueue(), pacing=pace)


def run(svc, messages, seconds: float = 300.0):
    """One invocation with `seconds` to run, on the fake clock."""
    clock = svc.pacing.clock
    deadline = clock() + seconds
    return index_queue.handle_batch(svc, messages, lambda: deadline - clock(), hold=Holding)


def upload(svc, key: str, who: str = "ada") -> QueuedMessage:
    """An upload, and the message S3 sends the queue for it."""
    indexing.upload_image(svc, key, photo_of(who), {})
    stored = svc.photos.head(key)
    record = {"key": quote_plus(key), "eTag": stored.etag, "versionId": stored.version_id, "sequencer": "A1"}
    body = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "s3": {"object": record}}]}
    return QueuedMessage(json.dumps(body), f"receipt of {key}", 1)


def removed(key: str, receipt: str = "r") -> QueuedMessage:
    record = {"key": quote_plus(key), "sequencer": "FF"}
    body = {
        "Records": [
            {"eventSource": "aws:s3", "eventName": "ObjectRemoved:DeleteMarkerCreated", "s3": {"object": record}}
        ]
    }
    return QueuedMessage(json.dumps(body), receipt, 1)


def test_s3_events_decode_to_the_version_they_name():
    body = json.dumps(
        {
            "Records": [
                {
                    "eventSource": "aws:s3",
                    "eventName": "ObjectCreated:CompleteMultipartUpload",
                    "s3": {
                        "object": {"key": "album/Zo%C3%AB+%2B1.jpg", "eTag": "e1", "versionId": "v1", "sequencer": "0A"}
                    },
                },
                {"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete", "s3": {"object": {"key": "b.jpg"}}},
                {"eventSource": "aws:s3", "eventName": "ObjectRestore:Post", "s3": {"object": {"key": "c.jpg"}}},
            ]
        }
    )
    created, gone = decode(body)
    assert (created.kind, created.key, created.redriven) == (CREATED, "album/Zoë +1.jpg", False)
    assert (created.version.etag, created.version.version_id) == ("e1", "v1")
    assert created.version.sequencer.endswith("0A") and len(created.version.sequencer) == 32
    assert (gone.kind, gone.key) == (REMOVED, "b.jpg")
    assert decode(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"})) == []
    [again] = decode(redrive_body("album/Zoë +1.jpg"))
    assert (again.kind, again.key, again.version, again.redriven) == (CREATED, "album/Zoë +1.jpg", None, True)
    for garbage in ("not json", "[]", json.dumps({"Records": [{"s3": {"object": {}}}]})):
        with pytest.raises(ValueError):
            decode(garbage)


def test_a_batch_indexes_each_photo_and_deletes_each_message_as_soon_as_it_is_done(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")]
    done = run(svc, messages)
    assert (done["done"], done["sentAgain"], done["throttled"], done["failed"]) == (2, 0, 0, 0)
    assert [svc.records.get_image(k)["status"] for k in ("a.png", "b.png")] == ["indexed", "indexed"]
    assert svc.queue.visibility == [(m.receipt, index_queue.HOLD_SECONDS) for m in messages]  # held meanwhile
    assert svc.queue.deleted == [m.receipt for m in messages] and svc.queue.sent == []
    assert maintenance.check(svc) == []


def test_the_heartbeat_holds_what_is_not_released_until_the_batch_ends():
    queue = RecordingQueue()
    with Heartbeat(queue, ["a", "b"], every=0.01, hold=30) as beat:
        beat.release("a")
        deadline = time.monotonic() + 5
        while len(queue.visibility) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
    beats = len(queue.visibility)
    time.sleep(0.05)
    assert queue.visibility[:2] == [("a", 30), ("b", 30)]
    assert set(queue.visibility[2:]) == {("b", 30)} and beats >= 4
    assert len(queue.visibility) == beats and not any(t.name == "heartbeat" for t in threading.enumerate())


def test_a_throttle_cuts_the_pace_and_the_message_is_tried_again_uncounted(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob"), upload(svc, "c.png", "cyd")]
    throttled = Failing(svc.engine, Throttled("The service is busy"), {"b.png"}, times=1)
    done = run(replace(svc, engine=PacedEngine(throttled, svc.pacing)), messages)
    assert (done["done"], done["sentAgain"], done["failed"]) == (3, 0, 0)  # tried again on its next turn
    assert {svc.records.get_image(k)["status"] for k in ("a.png", "b.png", "c.png")} == {"indexed"}
    assert svc.queue.deleted == [m.receipt for m in messages]  # none given back, none counted
    item = svc.pacing.state.read(svc.pacing.index.name)
    assert item["cutRate"] == 5 * pacing.CUT  # every worker slows down


def test_messages_still_throttled_when_the_invocation_runs_short_are_sent_again_uncounted(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob"), upload(svc, "c.png", "cyd")]
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy"), {"b.png"}))
    done = run(throttled, messages, seconds=index_queue.RESERVE_SECONDS + 20)
    assert (done["done"], done["sentAgain"], done["failed"]) == (1, 2, 0) and done["throttled"] >= 5
    assert svc.queue.sent == [(messages[1].body, 0), (messages[2].body, 0)]  # new messages: receives from 0
    assert svc.queue.deleted == [messages[0].receipt, messages[1].receipt, messages[2].receipt]
    image = svc.records.get_image("b.png")
    assert image["status"] == "pending" and "attempts" not in image and "error" not in image


def test_a_failure_gives_the_message_back_after_a_backoff_and_deletes_the_others_itself(svc):
    good, bad = upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")
    bad = replace(bad, receive_count=2)
    failing = replace(svc, engine=Failing(svc.engine, RuntimeError("socket closed"), {"b.png"}))
    with pytest.raises(BatchFailed) as raised:
        run(failing, [good, bad])
    assert raised.value.summary["failed"] == 1 and raised.value.summary["done"] == 1
    assert svc.queue.deleted == [good.receipt]  # so that Lambda gives back only the failed one
    assert svc.queue.visibility[-1] == (bad.receipt, index_queue.RETRY_SECONDS * 2)
    image = svc.records.get_image("b.png")
    assert (image["status"], image["attempts"]) == ("pending", 1) and "RuntimeError" in image["error"]


def test_on_its_last_receive_the_photo_ends_failed_with_the_reason(svc):
    message = replace(upload(svc, "b.png", "bob"), receive_count=index_queue.MAX_RECEIVES)
    failing = replace(svc, engine=Failing(svc.engine, RuntimeError("socket closed")))
    for receive in range(1, index_queue.MAX_RECEIVES):
        with pytest.raises(BatchFailed):
            run(failing, [replace(message, receive_count=receive)])
        assert svc.records.get_image("b.png")["status"] == "pending"
    with pytest.raises(BatchFailed):  # the message still goes back: SQS moves it to the dead-letter queue
        run(failing, [message])
    image = svc.records.get_image("b.png")
    assert image["status"] == "failed" and image["attempts"] == index_queue.MAX_RECEIVES
    assert image["error"] == (
        f"Indexing failed {index_queue.MAX_RECEIVES} times; the last time: unexpected RuntimeError (see the log)"
    )
    assert "pendingSince" not in image
    # Moved back from the dead-letter queue, the event indexes it.
    run(svc, [replace(message, receive_count=1)])
    image = svc.records.get_image("b.png")
    assert image["status"] == "indexed" and "error" not in image and "attempts" not in image


def test_a_photo_that_kills_its_worker_goes_last_and_alone_so_its_batch_mates_are_done(svc):
    messages = [upload(svc, f"{i}.png", f"person {i}") for i in range(4)]
    crashing = Failing(svc.engine, Killed(), {"1.png"})
    with pytest.raises(Killed):
        run(replace(svc, engine=crashing), messages)
    assert svc.queue.deleted == [messages[0].receipt]  # done before the crash: not given back
    back = [replace(m, receive_count=2) for m in messages[1:]]  # SQS gives the rest back together
    with pytest.raises(Killed):
        run(replace(svc, engine=crashing), back)
    assert svc.queue.deleted[1:] == [back[1].receipt, back[2].receipt]  # the suspect went last
    assert [svc.records.get_image(f"{i}.png")["status"] for i in (0, 2, 3)] == ["indexed"] * 3
    for receive in range(3, index_queue.MAX_RECEIVES):  # alone now: it takes no batch-mate down
        with pytest.raises(Killed):
            run(
                replace(svc, engine=crashing), [replace(back[0], receive_count=receive), upload(svc, f"n{receive}.png")]
            )
        assert svc.records.get_image(f"n{receive}.png")["status"] == "indexed"
    tried = crashing.tried
    with pytest.raises(BatchFailed):  # its last receive: not tried again
        run(replace(svc, engine=crashing), [replace(back[0], receive_count=index_queue.MAX_RECEIVES)])
    assert crashing.tried == tried
    image = svc.records.get_image("1.png")
    assert image["status"] == "failed" and image["error"] == index_queue.STOPPED_WORKER.format(times=4)
    assert svc.queue.visibility[-1] == (back[0].receipt, 0)  # to the dead-letter queue at once


def test_of_two_suspects_in_a_batch_one_is_handled_the_other_sent_back_marked_and_uncounted(svc):
    a, b, c = upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob"), upload(svc, "c.png", "cyd")
    crashing = replace(svc, engine=Failing(svc.engine, Killed(), {"a.png", "b.png"}))
    for message in (a, b):
        with pytest.raises(Killed):
            run(crashing, [message])
    done = run(svc, [replace(a, receive_count=2), replace(b, receive_count=2), c])
    assert (done["done"], done["sentAgain"]) == (2, 1)
    [(body, delay)] = svc.queue.sent
    assert delay == 0 and json.loads(body)[index_queue.SUSPECT] is True and decode(body)[0].key == "b.png"
    assert b.receipt in svc.queue.deleted and svc.records.get_image("b.png")["status"] == "pending"
    done = run(svc, [QueuedMessage(body, "again", 1)])  # sent back as a suspect: still handled last, alone
    assert done["done"] == 1 and svc.records.get_image("b.png")["status"] == "indexed"


def test_a_service_failing_for_every_photo_opens_the_breaker_and_counts_against_none(svc, clock):
    messages = [upload(svc, f"{i}.png", f"person {i}") for i in range(4)]
    down = replace(svc, engine=Failing(svc.engine, ServiceUnavailable("IndexFaces failed on AWS's side")))
    with pytest.raises(BatchFailed) as raised:
        run(down, messages, seconds=index_queue.RESERVE_SECONDS + 60)
    summary = raised.value.summary
    assert summary["failed"] == 1  # the first: nothing said yet that the service was down
    assert (summary["sentAgain"], summary["breakerOpen"]) == (3, True)
    assert [delay > 0 for _, delay in svc.queue.sent] == [True] * 3  # new messages, after the cool-down
    breaker = svc.pacing.state.read(BREAKER)
    assert breaker["openUntil"] > clock.now and breaker["cooldown"] > pacing.COOLDOWN_SECONDS
    clock.now = breaker["openUntil"]  # the service is back
    again = [QueuedMessage(body, f"again {i}", 1) for i, (body, _) in enumerate(svc.queue.sent)]
    assert run(svc, again)["done"] == 3
    assert "openUntil" not in svc.pacing.state.read(BREAKER)  # a success closes it
    assert svc.records.get_image("0.png")["status"] == "pending"  # counted once: its message is backing off


def test_a_photo_failing_while_others_succeed_is_counted(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob"), upload(svc, "c.png", "cyd")]
    failing = replace(svc, engine=Failing(svc.engine, ServiceUnavailable("IndexFaces failed"), {"b.png"}))
    with pytest.raises(BatchFailed) as raised:
        run(failing, messages)
    assert (raised.value.summary["done"], raised.value.summary["failed"]) == (2, 1)
    assert svc.queue.visibility[-1] == (messages[1].receipt, index_queue.RETRY_SECONDS)
    assert "openUntil" not in svc.pacing.state.read(BREAKER)


def test_a_photo_the_engine_refuses_stays_failed_when_its_event_comes_again(svc):
    message = upload(svc, "b.png", "bob")
    refusing = replace(svc, engine=Failing(svc.engine, InvalidImage("Rekognition refused the image")))
    run(refusing, [message])
    assert svc.records.get_image("b.png")["status"] == "failed"
    calls = len(svc.engine.calls)
    run(svc, [message])
    assert svc.records.get_image("b.png")["status"] == "failed" and len(svc.engine.calls) == calls


def test_messages_left_when_the_invocation_runs_short_are_sent_again_at_once(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")]
    left = iter([100.0 + index_queue.RESERVE_SECONDS, index_queue.RESERVE_SECONDS - 1])
    done = index_queue.handle_batch(svc, messages, lambda: next(left), hold=Holding)
    assert (done["done"], done["sentAgain"], done["throttled"]) == (1, 1, 0)
    assert svc.queue.sent == [(messages[1].body, 0)]
    assert svc.records.get_image("b.png")["status"] == "pending"


def test_a_photo_deleted_from_the_bucket_by_other_means_is_removed_with_its_faces(svc):
    run(svc, [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")])
    svc.photos.delete("a.png")  # `aws s3 rm`
    run(svc, [removed("a.png")])
    assert svc.records.get_image("a.png") is None
    assert set(svc.engine.faces) == {face["FaceId"] for face in svc.records.faces_of("b.png")}
    assert maintenance.check(svc) == []


def test_a_removal_keeps_the_record_until_its_faces_have_left_the_collection(svc):
    """DeleteFaces throttled (a mass delete over its quota): the record,
    which names the faces, stays for the next try; nothing is stranded."""
    run(svc, [upload(svc, "a.png", "ada")])
    svc.photos.delete("a.png")
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy"), {"DeleteFaces"}))
    done = run(throttled, [removed("a.png")], seconds=index_queue.RESERVE_SECONDS + 10)
    assert done["sentAgain"] == 1 and done["failed"] == 0
    assert svc.records.get_image("a.png") is not None and len(svc.engine.faces) == 1
    run(svc, [removed("a.png")])
    assert svc.records.get_image("a.png") is None and svc.engine.faces == {}
    assert maintenance.check(svc) == []


def test_deletes_take_their_turns_on_the_delete_faces_schedule(svc, clock):
    keys = [f"{i}.png" for i in range(4)]
    run(svc, [upload(svc, key, key) for key in keys])
    paced = replace(svc, engine=PacedEngine(svc.engine, svc.pacing))
    started = clock.now
    for key in keys:
        svc.photos.delete(key)
    run(paced, [removed(key, receipt=key) for key in keys])
    assert clock.now - started == pytest.approx(pacing.TURN_LEAD_SECONDS + 3 / 5)  # 5 a second: the 4th waits 0.6 s
    assert svc.engine.faces == {}


def test_a_removal_leaves_a_photo_put_again_since(svc):
    run(svc, [upload(svc, "a.png", "ada")])
    run(svc, [removed("a.png")])  # its photo was put again before this event came
    assert svc.records.get_image("a.png")["status"] == "indexed"
    assert len(svc.engine.faces) == 1


def test_the_redrive_sends_what_was_lost_once_no_message_waits(svc):
    for key in ("a.png", "b.png", "c.png"):
        upload(svc, key)  # their events were lost
    later = iso_before(now(), -indexing.REDRIVE_AFTER_SECONDS - 1)
    assert redrive_lost(svc, moment=now())["redriven"] == 0  # not minutes yet
    svc.queue.waiting = 4
    assert redrive_lost(svc, moment=later)["redriven"] == 0  # an event may still be waiting in the queue
    svc.queue.waiting, svc.queue.in_flight = 0, 7  # in flight: worked on, or backing off
    done = redrive_lost(svc, moment=later)
    assert (done["waiting"], done["inFlight"], done["redriven"]) == (0, 7, 3)
    messages = [QueuedMessage(body, f"r{i}", 1) for i, (body, _) in enumerate(svc.queue.sent)]
    assert sorted(event.key for m in messages for event in decode(m.body)) == ["a.png", "b.png", "c.png"]
    run(svc, messages)
    assert {svc.records.get_image(k)["status"] for k in ("a.png", "b.png", "c.png")} == {"indexed"}


def test_the_redrive_sends_at_most_half_an_hour_of_the_stages_pace(svc):
    assert index_queue.redrive_limit(svc) == max(index_queue.REDRIVE_MIN, 5 * index_queue.REDRIVE_WORK_SECONDS)
    fast = replace(svc, settings=replace(svc.settings, index_tps=50.0))
    assert index_queue.redrive_limit(fast) == index_queue.REDRIVE_MAX
    slow = replace(svc, settings=replace(svc.settings, index_tps=0.1))
    assert index_queue.redrive_limit(slow) == index_queue.REDRIVE_MIN


def test_a_photo_redriven_again_and_again_ends_failed(svc):
    """Its worker dies each time (nothing recorded), its message goes to the
    dead-letter queue, and the re-drive sends it again: a few times only."""
    upload(svc, "a.png")
    crashing = replace(svc, engine=Failing(svc.engine, Killed()))
    message = QueuedMessage(redrive_body("a.png"), "r", 1)
    for _ in range(indexing.MAX_REDRIVES):
        with pytest.raises(Killed):
            run(crashing, [message])
        assert svc.records.get_image("a.png")["status"] == "pending"
    run(crashing, [message])  # the attempts died in this process, which knows they are over
    image = svc.records.get_image("a.png")
    assert image["status"] == "failed" and image["error"].startswith(
        f"Its indexing was lost {indexing.MAX_REDRIVES} times"
    )


def test_a_redriven_photo_counts_once_per_redrive_however_often_its_message_comes_back(svc):
    upload(svc, "a.png")
    message = QueuedMessage(redrive_body("a.png"), "r", 1)
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy")))
    for _ in range(indexing.MAX_REDRIVES + 2):  # throttled each time: sent back once out of time
        run(throttled, [message], seconds=index_queue.RESERVE_SECONDS + 5)
        [(body, _)] = svc.queue.sent[-1:]
        message = QueuedMessage(body, "r", 1)
    assert svc.records.get_image("a.png")["redrives"] == 1
    crashing = replace(svc, engine=Failing(svc.engine, Killed()))
    first = QueuedMessage(redrive_body("a.png"), "r", 1)
    for receive in range(2, index_queue.MAX_RECEIVES):  # the same message again, after crashes
        with pytest.raises(Killed):
            run(crashing, [replace(first, receive_count=receive)])
    assert svc.records.get_image("a.png")["redrives"] == 1
    run(svc, [message])
    assert svc.records.get_image("a.png")["status"] == "indexed"


def test_photos_pending_over_a_day_are_stuck_only_while_the_queue_does_not_drain(svc, clock):
    upload(svc, "a.png")
    svc.queue.waiting = 1000
    much_later = iso_before(now(), -index_queue.PENDING_TOO_LONG_SECONDS - indexing.REDRIVE_AFTER_SECONDS - 1)
    first = redrive_lost(svc, moment=much_later)
    assert (first["pendingTooLong"], first["stuck"], first["redriven"]) == (1, 0, 0)
    assert first["hoursLeft"] == round(1000 / 5 / 3600, 2)
    clock.now += 60
    svc.pacing.state.update(BREAKER, add={"done": 5 * 60})  # the workers keep the pace: a healthy backlog
    assert redrive_lost(svc, moment=much_later)["stuck"] == 0
    clock.now += 60
    svc.pacing.state.update(BREAKER, add={"done": 20})  # a trickle: stuck
    assert redrive_lost(svc, moment=much_later)["stuck"] == 1


def test_a_message_that_is_no_s3_event_fails_and_is_left_to_the_dead_letter_queue(svc):
    with pytest.raises(BatchFailed, match="unexpected ValueError"):
        run(svc, [QueuedMessage("hello", "r", index_queue.MAX_RECEIVES)])
    assert svc.queue.visibility[-1][0] == "r"


def test_a_throttle_never_counts_as_an_attempt_of_index_photo(svc):
    upload(svc, "a.png")
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy")))
    for _ in range(indexing.INDEX_ATTEMPTS + 1):
        with pytest.raises(Throttled):
            indexing.index_photo(throttled, "a.png")
    image = svc.records.get_image("a.png")
    assert image["status"] == "pending" and "attempts" not in image


def test_a_full_collection_refuses_uploads_until_there_is_room_again(svc, clock):
    svc.pacing.note_room(0)  # the re-drive found the collection full
    with pytest.raises(CollectionFull) as refused:
        indexing.upload_image(svc, "a.png", photo_of("ada"), {})
    assert refused.value.status == 507 and "docs/deploy.md" in refused.value.message
    assert svc.photos.head("a.png") is None and svc.records.get_image("a.png") is None  # nothing stored
    svc.pacing.note_room(25)  # faces deleted, or the limit raised
    clock.now += 60
    assert indexing.upload_image(svc, "a.png", photo_of("ada"), {})["image"]["status"] == "pending"
