"""The indexing queue's workers and re-drive over the in-memory fakes
(core/index_queue.py): each message of a batch indexed or removed, a
throttle sent back delayed and never an attempt, other failures counted by
the queue's receives until the photo ends `failed`, lost events re-driven
only once the queue is empty. Milliseconds each."""

import json
from dataclasses import replace
from urllib.parse import quote_plus

import pytest

from chalicelib.core import index_queue, indexing
from chalicelib.core.errors import InvalidImage, Throttled
from chalicelib.core.index_queue import CREATED, REMOVED, BatchFailed, decode, handle_batch, redrive_body, redrive_lost
from chalicelib.core.ports import IndexQueue, QueuedMessage
from chalicelib.core.records import iso_before, now
from chalicelib.ops import maintenance
from tests.support.fakes import fake_services, photo_of


class RecordingQueue(IndexQueue):
    """What a worker asked of the queue."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []  # (body, delay)
        self.deleted: list[str] = []
        self.visibility: list[tuple[str, int]] = []
        self.waiting = 0

    def send(self, bodies: list[str], delay_seconds: int = 0) -> None:
        self.sent += [(body, delay_seconds) for body in bodies]

    def delete(self, receipts: list[str]) -> None:
        self.deleted += receipts

    def retry_after(self, receipts: list[str], seconds: int) -> None:
        self.visibility += [(receipt, seconds) for receipt in receipts]

    def backlog(self) -> int:
        return self.waiting


class Failing:
    """Wraps the engine: its index_faces raises `error` for the keys in `keys` (all when None)."""

    def __init__(self, engine, error: Exception, keys: set[str] | None = None) -> None:
        self._engine, self._error, self._keys = engine, error, keys

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def index_faces(self, photo, external_image_id):
        if self._keys is None or photo.key in self._keys:
            raise self._error
        return self._engine.index_faces(photo, external_image_id)


class Killed(BaseException):
    """Lambda ends the invocation: the worker's code cannot catch it."""


@pytest.fixture
def svc():
    return replace(fake_services(index_on_upload=False), queue=RecordingQueue())


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


def plenty() -> float:
    return 100.0


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


def test_a_batch_indexes_each_photo_and_holds_its_messages_only_as_long_as_it_can_run(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")]
    done = handle_batch(svc, messages, lambda: 87.2)
    assert done == {"messages": 2, "done": 2, "sentAgain": 0, "throttled": False, "failed": 0, "errors": []}
    assert [svc.records.get_image(k)["status"] for k in ("a.png", "b.png")] == ["indexed", "indexed"]
    assert svc.queue.visibility == [(m.receipt, 88 + index_queue.HOLD_MARGIN_SECONDS) for m in messages]
    assert svc.queue.sent == [] and svc.queue.deleted == []  # Lambda deletes the batch when the invocation returns
    assert maintenance.check(svc) == []


def test_a_throttle_sends_the_rest_of_the_batch_again_delayed_and_is_never_an_attempt(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob"), upload(svc, "c.png", "cyd")]
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy"), {"b.png"}))
    done = handle_batch(throttled, messages, plenty)
    assert (done["done"], done["sentAgain"], done["throttled"], done["failed"]) == (1, 2, True, 0)
    assert [body for body, _ in svc.queue.sent] == [messages[1].body, messages[2].body]
    low, high = index_queue.THROTTLE_DELAY_SECONDS
    assert all(low <= delay <= high for _, delay in svc.queue.sent)
    image = svc.records.get_image("b.png")
    assert image["status"] == "pending" and "attempts" not in image and "error" not in image
    assert svc.records.get_image("a.png")["status"] == "indexed"


def test_a_failure_gives_the_message_back_after_a_backoff_and_deletes_the_others_itself(svc):
    good, bad = upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")
    bad = replace(bad, receive_count=2)
    failing = replace(svc, engine=Failing(svc.engine, RuntimeError("socket closed"), {"b.png"}))
    with pytest.raises(BatchFailed) as raised:
        handle_batch(failing, [good, bad], plenty)
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
            handle_batch(failing, [replace(message, receive_count=receive)], plenty)
        assert svc.records.get_image("b.png")["status"] == "pending"
    with pytest.raises(BatchFailed):  # the message still goes back: SQS moves it to the dead-letter queue
        handle_batch(failing, [message], plenty)
    image = svc.records.get_image("b.png")
    assert image["status"] == "failed" and image["attempts"] == index_queue.MAX_RECEIVES
    assert image["error"] == (
        f"Indexing failed {index_queue.MAX_RECEIVES} times; the last time: unexpected RuntimeError (see the log)"
    )
    assert "pendingSince" not in image
    # Moved back from the dead-letter queue, the event indexes it.
    handle_batch(svc, [replace(message, receive_count=1)], plenty)
    image = svc.records.get_image("b.png")
    assert image["status"] == "indexed" and "error" not in image and "attempts" not in image


def test_a_photo_the_engine_refuses_stays_failed_when_its_event_comes_again(svc):
    message = upload(svc, "b.png", "bob")
    refusing = replace(svc, engine=Failing(svc.engine, InvalidImage("Rekognition refused the image")))
    handle_batch(refusing, [message], plenty)
    assert svc.records.get_image("b.png")["status"] == "failed"
    calls = len(svc.engine.calls)
    handle_batch(svc, [message], plenty)
    assert svc.records.get_image("b.png")["status"] == "failed" and len(svc.engine.calls) == calls


def test_messages_left_when_the_invocation_runs_short_are_sent_again_at_once(svc):
    messages = [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")]
    left = iter([100.0, 100.0, index_queue.RESERVE_SECONDS - 1])
    done = handle_batch(svc, messages, lambda: next(left))
    assert (done["done"], done["sentAgain"], done["throttled"]) == (1, 1, False)
    assert svc.queue.sent == [(messages[1].body, 0)]
    assert svc.records.get_image("b.png")["status"] == "pending"


def test_a_photo_deleted_from_the_bucket_by_other_means_is_removed_with_its_faces(svc):
    handle_batch(svc, [upload(svc, "a.png", "ada"), upload(svc, "b.png", "bob")], plenty)
    svc.photos.delete("a.png")  # `aws s3 rm`
    handle_batch(svc, [removed("a.png")], plenty)
    assert svc.records.get_image("a.png") is None
    assert set(svc.engine.faces) == {face["FaceId"] for face in svc.records.faces_of("b.png")}
    assert maintenance.check(svc) == []


def test_a_removal_leaves_a_photo_put_again_since(svc):
    handle_batch(svc, [upload(svc, "a.png", "ada")], plenty)
    handle_batch(svc, [removed("a.png")], plenty)  # its photo was put again before this event came
    assert svc.records.get_image("a.png")["status"] == "indexed"
    assert len(svc.engine.faces) == 1


def test_the_redrive_waits_for_an_empty_queue_then_sends_what_was_lost(svc):
    for key in ("a.png", "b.png", "c.png"):
        upload(svc, key)  # their events were lost
    later = iso_before(now(), -indexing.REDRIVE_AFTER_SECONDS - 1)
    assert redrive_lost(svc, moment=now()) == {"queued": 0, "redriven": 0, "pendingTooLong": 0}  # not minutes yet
    svc.queue.waiting = 4
    assert redrive_lost(svc, moment=later)["redriven"] == 0  # an event may still be in the queue
    svc.queue.waiting = 0
    assert redrive_lost(svc, moment=later) == {"queued": 0, "redriven": 3, "pendingTooLong": 0}
    messages = [QueuedMessage(body, f"r{i}", 1) for i, (body, _) in enumerate(svc.queue.sent)]
    assert sorted(event.key for m in messages for event in decode(m.body)) == ["a.png", "b.png", "c.png"]
    handle_batch(svc, messages, plenty)
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
            handle_batch(crashing, [message], plenty)
        assert svc.records.get_image("a.png")["status"] == "pending"
    handle_batch(crashing, [message], plenty)  # the attempts died in this process, which knows they are over
    image = svc.records.get_image("a.png")
    assert image["status"] == "failed" and image["error"].startswith(
        f"Its indexing was lost {indexing.MAX_REDRIVES} times"
    )


def test_a_redriven_photo_counts_once_per_redrive_however_often_its_message_comes_back(svc):
    upload(svc, "a.png")
    message = QueuedMessage(redrive_body("a.png"), "r", 1)
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy")))
    for _ in range(indexing.MAX_REDRIVES + 2):  # throttled each time: sent back, delayed
        handle_batch(throttled, [message], plenty)
        [(body, _)] = svc.queue.sent[-1:]
        message = QueuedMessage(body, "r", 1)
    assert svc.records.get_image("a.png")["redrives"] == 1
    crashing = replace(svc, engine=Failing(svc.engine, Killed()))
    first = QueuedMessage(redrive_body("a.png"), "r", 1)
    for receive in range(2, index_queue.MAX_RECEIVES + 1):  # the same message again, after crashes
        with pytest.raises(Killed):
            handle_batch(crashing, [replace(first, receive_count=receive)], plenty)
    assert svc.records.get_image("a.png")["redrives"] == 1
    handle_batch(svc, [message], plenty)
    assert svc.records.get_image("a.png")["status"] == "indexed"


def test_the_redrive_counts_photos_pending_too_long_whatever_the_queue_holds(svc):
    upload(svc, "a.png")
    svc.queue.waiting = 1000
    much_later = iso_before(now(), -index_queue.PENDING_TOO_LONG_SECONDS - indexing.REDRIVE_AFTER_SECONDS - 1)
    assert redrive_lost(svc, moment=much_later) == {"queued": 1000, "redriven": 0, "pendingTooLong": 1}


def test_a_message_that_is_no_s3_event_fails_and_is_left_to_the_dead_letter_queue(svc):
    with pytest.raises(BatchFailed, match="unexpected ValueError"):
        handle_batch(svc, [QueuedMessage("hello", "r", index_queue.MAX_RECEIVES)], plenty)
    assert svc.queue.visibility[-1][0] == "r"


def test_a_throttle_never_counts_as_an_attempt_of_index_photo(svc):
    upload(svc, "a.png")
    throttled = replace(svc, engine=Failing(svc.engine, Throttled("The service is busy")))
    for _ in range(indexing.INDEX_ATTEMPTS + 1):
        with pytest.raises(Throttled):
            indexing.index_photo(throttled, "a.png")
    image = svc.records.get_image("a.png")
    assert image["status"] == "pending" and "attempts" not in image
