"""The indexing protocol under S3's delivery rules (events at least once, in
any order, at the same time), driven step by step, on three wirings: the
in-memory fakes (milliseconds), the embedded stage (SQLite, files, dlib)
and the AWS wiring (moto S3 and DynamoDB, the Rekognition fake). After
every interleaving each stored photo's faces are in the collection and in
the records exactly once, labelled from its current version, and `check`
finds nothing to repair."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import pytest

from chalicelib import wiring
from chalicelib.core import indexing, library, searching
from chalicelib.core.config import Settings
from chalicelib.core.ports import PhotoVersion
from chalicelib.core.records import normalize_sequencer
from chalicelib.core.services import Services
from chalicelib.ops import maintenance
from tests.support.fakes import fake_services, photo_of
from tests.support.interleave import Steps
from tests.support.photos import photo

KEY = "portrait.jpg"
REAL = {"keanu": "Keanu-Reeves.jpg", "avril": "Avril-Lavigne.jpg"}


@dataclass
class Wiring:
    name: str
    svc: Services
    store: Callable[[str, bytes, dict], PhotoVersion]  # what an upload stores; the version its event names
    photo: Callable[[str], bytes]


def _upload(svc: Services, version_of: Callable[[str], PhotoVersion]):
    """An upload that records the photo pending and leaves indexing to the
    test, which plays the S3 events."""

    def store(key: str, data: bytes, metadata: dict) -> PhotoVersion:
        indexing.upload_image(replace(svc, index_on_upload=False), key, data, metadata)
        return version_of(key)

    return store


@pytest.fixture(
    params=["fake", pytest.param("local", marks=pytest.mark.slow), pytest.param("dev", marks=pytest.mark.slow)]
)
def wired(request, tmp_path, monkeypatch) -> Iterator[Wiring]:
    if request.param == "fake":
        svc = fake_services()
        yield Wiring("fake", svc, _upload(svc, lambda key: svc.photos.head(key).version), lambda who: photo_of(who))
        return
    if request.param == "local":
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "data")}))
        yield Wiring("local", svc, _upload(svc, lambda key: svc.photos.head(key).version), lambda who: photo(REAL[who]))
        return
    from tests.support.fake_rekognition import aws_stage

    with aws_stage(monkeypatch, "dev") as resources:
        resources.events.held = True  # the test plays the events
        svc = wiring.services(Settings.from_env(resources.env))

        def event_version(key: str) -> PhotoVersion:
            (record,) = [r for r in resources.events.take() if r["key"] == key][-1:]
            return PhotoVersion(key, record["eTag"], record.get("versionId"), normalize_sequencer(record["sequencer"]))

        yield Wiring("dev", svc, _upload(svc, event_version), lambda who: photo(REAL[who]))


def assert_settled(w: Wiring, expected: dict[str, str]) -> None:
    """`expected`: key -> the person its current version shows (the label)."""
    svc = w.svc
    recorded = {face["FaceId"] for key in expected for face in svc.records.faces_of(key)}
    collection = {face["FaceId"] for face in maintenance._all(svc.engine.list_faces)}
    assert collection == recorded, "the collection and the records disagree"
    for key, person in expected.items():
        image = svc.records.get_image(key)
        assert image["status"] == "indexed" and image["etag"] == svc.photos.head(key).etag
        assert image["metadata"] == {"name": person}
        assert image["faceCount"] == len(svc.records.faces_of(key)) == 1
        found = searching.search_image(svc, w.photo(person), 80.0, 100)
        assert [m["imageKey"] for m in found["matches"]] == [key], "the photo is not found exactly once"
        assert found["matchedFaces"] == [person]
    assert maintenance.check(svc) == []


def _new(w: Wiring, person: str) -> PhotoVersion:
    return w.store(KEY, w.photo(person), {"name": person})


def test_a_repeated_event_changes_nothing(wired):
    version = _new(wired, "keanu")
    first = indexing.index_photo(wired.svc, KEY, version)
    again = indexing.index_photo(wired.svc, KEY, version)
    assert again["revision"] == first["revision"]
    assert_settled(wired, {KEY: "keanu"})


@pytest.mark.parametrize("winner", ["A", "B"])
def test_two_events_at_once_both_indexing_before_either_writes(wired, winner):
    version = _new(wired, "keanu")
    steps = Steps()
    svc = steps.wrap(wired.svc)
    for run in "AB":
        steps.pause(run, "index_faces")
    runs = {run: steps.start(run, indexing.index_photo, svc, KEY, version) for run in "AB"}
    for run in "AB":
        steps.reached(run, "index_faces")
    loser = "B" if winner == "A" else "A"
    steps.release(winner)
    runs[winner].result(60)
    steps.release(loser)
    runs[loser].result(60)
    assert_settled(wired, {KEY: "keanu"})


def test_two_events_at_once_the_second_reading_before_the_first_indexes(wired):
    version = _new(wired, "keanu")
    steps = Steps()
    svc = steps.wrap(wired.svc)
    steps.pause("B", "get_image")  # B has read the pending record, before its IndexFaces
    b = steps.start("B", indexing.index_photo, svc, KEY, version)
    steps.reached("B", "get_image")
    indexing.index_photo(wired.svc, KEY, version)  # A, all the way
    steps.release("B")
    b.result(60)
    assert_settled(wired, {KEY: "keanu"})


def test_a_late_event_for_the_older_version_before_the_newer_is_indexed(wired):
    old = _new(wired, "keanu")
    new = _new(wired, "avril")
    indexing.index_photo(wired.svc, KEY, old)  # the bucket holds the newer version: nothing to do
    assert wired.svc.records.get_image(KEY)["status"] == "pending"
    indexing.index_photo(wired.svc, KEY, new)
    assert_settled(wired, {KEY: "avril"})


def test_a_late_event_for_the_older_version_after_the_newer_is_indexed(wired):
    old = _new(wired, "keanu")
    new = _new(wired, "avril")
    indexing.index_photo(wired.svc, KEY, new)
    indexing.index_photo(wired.svc, KEY, old)
    assert_settled(wired, {KEY: "avril"})


def test_the_older_version_indexed_while_the_newer_is_stored_and_indexed(wired):
    """The old version's run reads it before the new one lands, and commits
    last: it loses, and takes its faces back."""
    old = _new(wired, "keanu")
    steps = Steps()
    svc = steps.wrap(wired.svc)
    steps.pause("old", "index_faces")
    run = steps.start("old", indexing.index_photo, svc, KEY, old)
    steps.reached("old", "index_faces")
    new = _new(wired, "avril")
    indexing.index_photo(wired.svc, KEY, new)
    steps.release("old")
    run.result(60)
    assert_settled(wired, {KEY: "avril"})


def test_the_older_version_commits_first_then_the_newer_wins_anyway(wired):
    old = _new(wired, "keanu")
    steps = Steps()
    svc = steps.wrap(wired.svc)
    steps.pause("old", "index_faces")
    steps.pause("new", "index_faces")
    old_run = steps.start("old", indexing.index_photo, svc, KEY, old)
    steps.reached("old", "index_faces")
    new = _new(wired, "avril")
    new_run = steps.start("new", indexing.index_photo, svc, KEY, new)
    steps.reached("new", "index_faces")
    steps.release("old")
    old_run.result(60)
    steps.release("new")
    new_run.result(60)
    assert_settled(wired, {KEY: "avril"})


@pytest.mark.parametrize("after", ["get_image", "index_faces", "commit_faces"])
def test_a_delete_racing_an_index_stands(wired, after):
    """The delete comes while the run has read the record, has indexed, or
    has committed: whatever the moment, the photo stays deleted and nothing
    of it is left in the collection or the records."""
    version = _new(wired, "keanu")
    other = wired.store("other.jpg", wired.photo("avril"), {"name": "avril"})
    indexing.index_photo(wired.svc, "other.jpg", other)
    steps = Steps()
    svc = steps.wrap(wired.svc)
    steps.pause("run", after)
    run = steps.start("run", indexing.index_photo, svc, KEY, version)
    steps.reached("run", after)
    library.delete_image(wired.svc, KEY)
    steps.release("run")
    run.result(60)
    assert wired.svc.records.get_image(KEY) is None
    assert wired.svc.photos.head(KEY) is None
    assert_settled(wired, {"other.jpg": "avril"})


def test_an_event_after_the_delete_does_nothing(wired):
    version = _new(wired, "keanu")
    library.delete_image(wired.svc, KEY)
    assert indexing.index_photo(wired.svc, KEY, version) is None
    assert wired.svc.records.get_image(KEY) is None
    assert list(maintenance._all(wired.svc.engine.list_faces)) == []
