"""Issue 25's ways to end wrong that the protocol owns, each driven step by
step on every wiring where it can happen (tests/support/wirings.py: the
fakes, the embedded stage, the AWS wiring over moto and the Rekognition
fake), through the functions the deployed handlers call:

- two PUTs of one key close together: an upload's version, as PutObject's
  reply names it, is ordered by nothing (no sequencer): the upload writes
  only after reading that the bucket still holds it (item 1);
- an older version made current again by S3's own tools (the current
  version deleted by its id, a delete marker removed) says so only by an
  ObjectRemoved event: the handler follows what the bucket holds (item 2);
- a failure verdict (the queue's last receive of one copy of an event)
  never overwrites a run of another copy that is about to commit (item 4);
- a throttle of any service, the records' commit included, hands the
  attempt back (What to build 5);
- an attempt whose process is gone on this machine is not waited for: the
  re-drive takes its photo at once, `repair` its stray face (item 7).
A restore starts with no attempt under way (item 5): tests/ops/test_backup_in_flight.py."""

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace

import pytest

from chalicelib.core import index_queue, indexing, records, searching
from chalicelib.core.errors import ServiceUnavailable, Throttled
from chalicelib.core.ports import QueuedMessage
from chalicelib.ops import maintenance
from tests.support import wirings
from tests.support.interleave import Steps
from tests.support.s3_events import S3Events
from tests.support.wirings import Wiring, assert_settled, play

KEY = "portrait.jpg"
SLOW = pytest.mark.slow


@pytest.fixture(params=["fake", pytest.param("local", marks=SLOW), pytest.param("dev", marks=SLOW)])
def wired(request, tmp_path, monkeypatch) -> Iterator[Wiring]:
    with wirings.wired(request.param, tmp_path, monkeypatch) as w:
        yield w


@pytest.fixture(params=["fake", pytest.param("dev", marks=SLOW)])
def versioned(request, tmp_path, monkeypatch) -> Iterator[Wiring]:
    """The wirings whose bucket keeps versions (the file store offline keeps one)."""
    with wirings.wired(request.param, tmp_path, monkeypatch) as w:
        yield w


# Item 1: two PUTs of one key close together.


@pytest.mark.parametrize("second", ["same bytes", "other bytes"])
def test_two_puts_of_one_key_close_together_the_second_stands(wired, second):
    """A client retries with a corrected name. The first PUT is stored, then
    the second is stored, recorded and indexed before the first writes its
    pending record: that write must not stand (same bytes: it would keep the
    older name for good, `check` clean; other bytes: a record pending on a
    version the bucket no longer holds, the faces under the wrong name)."""
    person = "keanu" if second == "same bytes" else "avril"
    steps = Steps()
    svc = steps.wrap(replace(wired.svc, index_on_upload=wired.index_on_upload))
    steps.pause("first", "put")  # stored; its pending record not written yet
    first = steps.start("first", indexing.upload_image, svc, KEY, wired.photo("keanu"), {"name": "Keanu Charles"})
    steps.reached("first", "put")
    wired.upload(KEY, wired.photo(person), {"name": person})
    play(wired, wired.take_events())  # both events: the first's finds its version replaced
    steps.release("first")
    first.result(60)
    play(wired, wired.take_events())
    assert_settled(wired, {KEY: person})


# Item 2: an older version made current again.


@pytest.mark.parametrize("second", ["same bytes", "other bytes"])
def test_deleting_the_current_version_by_its_id_brings_the_one_before_back(versioned, second):
    """S3's documented way back to an earlier version. Only ObjectRemoved
    arrives; the photo is not gone, an older version is current: its
    faces and name are what a search must show. Late copies of both
    versions' ObjectCreated events change nothing."""
    w = versioned
    person, name = ("keanu", "Keanu Reeves") if second == "same bytes" else ("avril", "avril")
    first = w.store(KEY, w.photo("keanu"), {"name": "keanu"})
    indexing.index_queued_photo(w.svc, KEY, first)
    w.upload(KEY, w.photo(person), {"name": name})
    created = w.take_events()
    play(w, created)
    assert w.svc.records.get_image(KEY)["metadata"] == {"name": name}
    w.bucket.delete_current_version(KEY)
    play(w, w.take_events())
    assert_settled(w, {KEY: "keanu"})
    play(w, created)  # late and again
    assert_settled(w, {KEY: "keanu"})
    if second == "other bytes":
        assert searching.search_image(w.svc, w.photo("avril"), 80.0, 10)["matches"] == []


def test_an_undeleted_photo_is_indexed_again(versioned):
    """A plain delete on a versioned bucket leaves a delete marker: the
    photo is gone, and so are its records and faces. Removing the marker
    (the console's undelete) brings the photo back: it is indexed again."""
    w = versioned
    indexing.index_queued_photo(w.svc, KEY, w.store(KEY, w.photo("keanu"), {"name": "keanu"}))
    w.bucket.delete_marker(KEY)
    play(w, w.take_events())
    assert w.svc.records.get_image(KEY) is None
    assert searching.search_image(w.svc, w.photo("keanu"), 80.0, 10)["matches"] == []
    w.bucket.undelete(KEY)
    play(w, w.take_events())
    assert_settled(w, {KEY: "keanu"})


def test_an_undelete_whose_delete_marker_event_was_lost_changes_nothing(versioned):
    w = versioned
    indexing.index_queued_photo(w.svc, KEY, w.store(KEY, w.photo("keanu"), {"name": "keanu"}))
    before = w.svc.records.get_image(KEY)
    w.bucket.delete_marker(KEY)
    w.take_events()  # lost
    w.bucket.undelete(KEY)
    play(w, w.take_events())
    assert w.svc.records.get_image(KEY)["revision"] == before["revision"]
    assert_settled(w, {KEY: "keanu"})


# Item 4: a failure verdict and a run about to commit.


def test_the_last_receive_of_one_copy_never_fails_a_run_of_the_other_about_to_commit(versioned, monkeypatch):
    """S3 sent the event twice. One copy's run has indexed and is about to
    commit; the other copy meets Rekognition's 5xx on each of its receives
    and, on the last, the queue gives up on it (record_failure). The run
    under way must still commit: the photo ends indexed, not `failed`
    without faces with `check` clean and nothing to visit it again. (The
    queue runs on AWS: the fakes and the AWS wiring.)"""
    wired = versioned
    version = wired.store(KEY, wired.photo("keanu"), {"name": "keanu"})
    body = _created_message(version)
    steps = Steps()
    svc = steps.wrap(wired.svc)
    steps.pause("copy 1", "index_faces")
    copy_1 = steps.start("copy 1", index_queue._handle, svc, QueuedMessage(body, "r1"), set())
    steps.reached("copy 1", "index_faces")

    def unavailable(*args, **kwargs):
        raise ServiceUnavailable("Rekognition answered 500 (simulated).")

    monkeypatch.setattr(wired.svc.engine, "index_faces", unavailable)
    for receive in range(1, index_queue.MAX_RECEIVES + 1):
        message = QueuedMessage(body, "r2", receive)
        # On the last receive copy 1's attempt, begun and not ended, may be a
        # worker that died: the queue stops the message (_GaveUp), its verdict
        # deferred while that attempt may still commit.
        last = receive == index_queue.MAX_RECEIVES
        with pytest.raises((ServiceUnavailable, index_queue._GaveUp) if last else ServiceUnavailable):
            index_queue._handle(wired.svc, message, set())
    assert wired.svc.records.get_image(KEY)["status"] == "pending"  # no verdict over copy 1's run
    index_queue._give_up(wired.svc, message, "Rekognition answered 500 (simulated).")
    monkeypatch.undo()
    steps.release("copy 1")
    copy_1.result(60)
    assert_settled(wired, {KEY: "keanu"})


@pytest.mark.parametrize("outcome", ["indexed", "refused"])
def test_the_last_receive_failing_after_another_copy_concluded_changes_nothing(versioned, outcome):
    """One copy of the event fails on its last receive while the other copy
    concludes the version (indexed, or refused by the engine: final, not to
    be tried again). The queue's verdict comes after: it must leave the
    outcome as it is, faces, reason and all."""
    w = versioned
    data = w.photo("keanu") if outcome == "indexed" else b"text someone copied into the bucket\n" * 40
    w.svc.photos.put(KEY, data, "image/jpeg", {"name": "keanu"})
    (version,) = [wirings.event_version(r) for r in w.take_events() if r["key"] == KEY]
    concluded = indexing.index_queued_photo(w.svc, KEY, version)
    assert concluded["status"] == ("indexed" if outcome == "indexed" else "failed")
    reason = "Indexing failed 5 times; the last time: Rekognition answered 500 (simulated)."
    indexing.record_failure(w.svc, KEY, version, reason)
    after = w.svc.records.get_image(KEY)
    assert after == concluded
    assert not after.get("attempts")  # a refusal is never tried again when an event comes back
    if outcome == "indexed":
        assert_settled(w, {KEY: "keanu"})


def test_a_verdict_whose_write_loses_to_a_new_attempt_decides_again(versioned):
    """The queue's verdict on the second version (the first one's faces to
    go with it) has read the record, no attempt under way, when a run of
    that version claims one. The verdict's write loses: it must decide
    again (the attempt under way may commit), not write `failed` over it."""
    w = versioned
    indexing.index_queued_photo(w.svc, KEY, w.store(KEY, w.photo("keanu"), {"name": "keanu"}))
    second = w.store(KEY, w.photo("avril"), {"name": "avril"})
    steps = Steps()
    steps.pause("verdict", "faces_of")  # about to write `failed`, the first version's faces to retire
    reason = "Indexing failed 5 times; the last time: Rekognition answered 500 (simulated)."
    verdict = steps.start("verdict", indexing.record_failure, steps.wrap(w.svc), KEY, second, reason)
    steps.reached("verdict", "faces_of")
    steps.pause("run", "put_image")  # its attempt claimed
    run = steps.start("run", indexing.index_queued_photo, steps.wrap(w.svc), KEY, second)
    steps.reached("run", "put_image")
    steps.release("verdict")
    verdict.result(60)
    steps.release("run")
    run.result(60)
    assert_settled(w, {KEY: "avril"})


def test_offline_the_last_attempt_never_fails_a_run_about_to_commit(wired, monkeypatch):
    """The same race offline: the re-drive's run has indexed and is about
    to commit when another run's last attempt fails."""
    run, steps, version = _paused_after_index_faces(wired)

    def unavailable(*args, **kwargs):
        raise ServiceUnavailable("The engine failed (simulated).")

    monkeypatch.setattr(wired.svc.engine, "index_faces", unavailable)
    for _ in range(indexing.UPLOAD_ATTEMPTS):
        try:
            indexing.index_photo(wired.svc, KEY, version, attempts=indexing.UPLOAD_ATTEMPTS)
        except ServiceUnavailable:
            continue
    monkeypatch.undo()
    steps.release("run")
    run.result(60)
    assert_settled(wired, {KEY: "keanu"})


# What to build 5: a throttle of any service hands the attempt back.


def test_a_throttled_commit_hands_the_attempt_back_and_leaves_no_face(wired, monkeypatch):
    """DynamoDB throttles the commit (SQLite never does, but the protocol is
    the same): each run hands its attempt back, however many there are, and
    takes its faces back; the photo is never `failed` from throttles."""
    version = wired.store(KEY, wired.photo("keanu"), {"name": "keanu"})

    def throttled(*args, **kwargs):
        raise Throttled("The records' table throttled the commit (simulated).")

    monkeypatch.setattr(wired.svc.records, "commit_faces", throttled)
    for _ in range(indexing.INDEX_ATTEMPTS + 2):
        with pytest.raises(Throttled):
            indexing.index_photo(wired.svc, KEY, version)
    image = wired.svc.records.get_image(KEY)
    assert image["status"] == "pending" and not image.get("attempts") and not image.get("running")
    assert list(maintenance._all(wired.svc.engine.list_face_ids)) == []
    monkeypatch.undo()
    indexing.index_photo(wired.svc, KEY, version)
    assert_settled(wired, {KEY: "keanu"})


def test_a_throttled_attempt_hands_itself_back_though_another_attempt_began_meanwhile(versioned, monkeypatch):
    """Two runs of one version claim an attempt each; the first is then
    throttled. Its hand-back loses the compare-and-set to the second's
    claim: it must read again and still take its mark off and its count
    back, or a stale mark would hold verdicts and repair for 15 minutes and
    a throttle would count toward `failed`."""
    w = versioned
    version = w.store(KEY, w.photo("keanu"), {"name": "keanu"})
    steps = Steps()
    runs = {}
    for name in ("first", "second"):
        steps.pause(name, "put_image")  # its attempt claimed
        runs[name] = steps.start(name, indexing.index_photo, steps.wrap(w.svc), KEY, version)
        steps.reached(name, "put_image")
    second_mark = w.svc.records.get_image(KEY)["running"][-1]

    def throttled(*args, **kwargs):
        raise Throttled("Rekognition throttled IndexFaces (simulated).")

    monkeypatch.setattr(w.svc.engine, "index_faces", throttled)
    steps.release("first")
    with pytest.raises(Throttled):
        runs["first"].result(60)
    monkeypatch.undo()
    image = w.svc.records.get_image(KEY)
    assert image["running"] == [second_mark] and image["attempts"] == 1
    steps.release("second")
    runs["second"].result(60)
    assert_settled(w, {KEY: "keanu"})


def _paused_after_index_faces(w: Wiring):
    """A photo uploaded, and a run of it that has indexed and waits to commit."""
    version = w.store(KEY, w.photo("keanu"), {"name": "keanu"})
    steps = Steps()
    steps.pause("run", "index_faces")
    run = steps.start("run", indexing.index_photo, steps.wrap(w.svc), KEY, version)
    steps.reached("run", "index_faces")
    return run, steps, version


def _created_message(version) -> str:
    record = {"key": version.key, "eTag": version.etag, "sequencer": version.sequencer or "1"}
    if version.version_id:
        record["versionId"] = version.version_id
    return json.dumps(S3Events("faceprint-test").event(record))


# Item 7: a run whose process is gone is not waited for (offline: `make run`).


@pytest.fixture(params=["fake", pytest.param("local", marks=SLOW)])
def offline(request, tmp_path, monkeypatch) -> Iterator[Wiring]:
    """Where an attempt's process can be known gone: runs of this machine
    (a Lambda's never can: on AWS the grace is all there is)."""
    with wirings.wired(request.param, tmp_path, monkeypatch) as w:
        yield w


class Killed(BaseException):
    """The process died here (kill -9): no handler runs."""


def ended_pid() -> int:
    ended = subprocess.Popen(["true"])
    ended.wait()
    return ended.pid


@pytest.mark.parametrize("how", ["pid ended", "pid used again"])
def test_a_run_whose_server_was_killed_is_taken_again_at_the_next_start(offline, monkeypatch, how):
    """`make run` killed while it indexed, started again: its re-drive's
    first round indexes the photo (it does not wait out the 15 minutes an
    attempt of a process that may still run is given), and `repair` takes
    the face the killed run had added, for no run will commit it."""
    w = offline
    version = w.store(KEY, w.photo("keanu"), {"name": "keanu"})
    if how == "pid ended":
        pid = ended_pid()
        monkeypatch.setattr(records, "os", SimpleNamespace(getpid=lambda: pid, kill=os.kill))
    else:  # this process's pid, with another start: the killed server's, its pid used again since
        monkeypatch.setattr(records.PROCESSES, "this", lambda: f"{socket.gethostname()}:{os.getpid()}:1")
    index_faces = w.svc.engine.index_faces

    def dies_after_indexing(*args, **kwargs):
        index_faces(*args, **kwargs)
        raise Killed()

    monkeypatch.setattr(w.svc.engine, "index_faces", dies_after_indexing)
    with pytest.raises(Killed):
        indexing.index_photo(w.svc, KEY, version)
    monkeypatch.undo()
    assert {d.kind for d in maintenance.check(w.svc)} == {maintenance.PHOTO_PENDING, maintenance.FACE_WITHOUT_RECORD}
    assert indexing.redrive_pending(w.svc)["indexed"] == 1  # started again: at once, not 15 minutes later
    maintenance.repair(w.svc, maintenance.check(w.svc))
    assert_settled(w, {KEY: "keanu"})
    assert "running" not in w.svc.records.get_image(KEY)


def test_an_attempt_over_whose_mark_stayed_on_the_record_is_not_waited_for(offline, monkeypatch):
    """A run failed, and so did the write that would have taken its mark off
    the record. The process knows the attempt is over: its re-drive takes
    the photo at its next round, not once 15 minutes have passed."""
    w = offline
    version = w.store(KEY, w.photo("keanu"), {"name": "keanu"})
    put_image, writes = w.svc.records.put_image, []

    def second_write_fails(*args, **kwargs):
        writes.append(args)
        if len(writes) == 2:
            raise ServiceUnavailable("The records' store failed (simulated).")
        return put_image(*args, **kwargs)

    def unavailable(*args, **kwargs):
        raise ServiceUnavailable("The engine failed (simulated).")

    monkeypatch.setattr(w.svc.records, "put_image", second_write_fails)
    monkeypatch.setattr(w.svc.engine, "index_faces", unavailable)
    with pytest.raises(ServiceUnavailable):
        indexing.index_photo(w.svc, KEY, version)
    monkeypatch.undo()
    assert w.svc.records.get_image(KEY)["running"]  # the claim's mark, and its retry 15 minutes on
    assert indexing.redrive_pending(w.svc)["indexed"] == 1
    assert_settled(w, {KEY: "keanu"})


def test_a_run_under_way_in_a_live_process_is_still_waited_for(offline):
    """The other side: a mark of this very process (a run under way) keeps
    the re-drive away until its grace is over."""
    w = offline
    run, steps, _ = _paused_after_index_faces(w)
    assert indexing.redrive_pending(w.svc)["pending"] == 0
    steps.release("run")
    run.result(60)
    assert_settled(w, {KEY: "keanu"})
