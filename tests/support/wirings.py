"""The indexing protocol's three wirings, for tests that drive it step by
step (tests/contract): the in-memory fakes (milliseconds), the embedded
stage (SQLite, files, dlib) and the AWS wiring (moto S3, DynamoDB and SQS,
the Rekognition fake). An upload records the photo pending and leaves
indexing to the test, which plays the bucket's events as the queue's
workers do (`play`); offline there are none: the upload's own run is the
indexer (`index_on_upload`).

On the versioned wirings (fakes and AWS) `bucket` holds what a user can do
to a versioned bucket with S3's own tools: delete the current version by
its id, leave a delete marker, undelete."""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from chalicelib import wiring
from chalicelib.core import index_queue, indexing, searching
from chalicelib.core.config import Settings
from chalicelib.core.ports import PhotoVersion, QueuedMessage
from chalicelib.core.records import normalize_sequencer
from chalicelib.core.services import Services
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of
from tests.support.photos import photo
from tests.support.s3_events import S3Events

REAL = {"keanu": "Keanu-Reeves.jpg", "avril": "Avril-Lavigne.jpg"}


@dataclass
class Bucket:
    """S3's own tools on a versioned bucket (the console, `aws s3api`)."""

    delete_current_version: Callable[[str], None]  # DeleteObject with the current VersionId
    delete_marker: Callable[[str], None]  # DeleteObject without one: a delete marker
    undelete: Callable[[str], None]  # DeleteObject of the current delete marker's VersionId
    versions: Callable[[str], list[str]]  # ListObjectVersions: the key's version and marker ids


@dataclass
class Wiring:
    name: str
    svc: Services
    photo: Callable[[str], bytes]
    take_events: Callable[[], list[dict]]  # the bucket's notifications since the last call (S3Events records)
    bucket: Bucket | None = None

    @property
    def index_on_upload(self) -> bool:
        return self.name == "local"

    def upload(self, key: str, data: bytes, metadata: dict) -> dict:
        """PUT /images/{key}: offline it indexes; on AWS the event will."""
        return indexing.upload_image(replace(self.svc, index_on_upload=self.index_on_upload), key, data, metadata)

    def store(self, key: str, data: bytes, metadata: dict) -> PhotoVersion:
        """An upload that records the photo pending and leaves indexing to
        the test: the version its event names (offline: the stored one)."""
        indexing.upload_image(replace(self.svc, index_on_upload=False), key, data, metadata)
        if self.name == "local":
            return self.svc.photos.head(key).version
        created = [r for r in self.take_events() if r["key"] == key and r["eventName"].startswith("ObjectCreated")]
        return event_version(created[-1])


def event_version(record: dict) -> PhotoVersion:
    """The version an ObjectCreated notification names, as the queue's worker decodes it."""
    return PhotoVersion(
        record["key"], record["eTag"], record.get("versionId"), normalize_sequencer(record.get("sequencer"))
    )


def play(w: Wiring, records: list[dict]) -> None:
    """Deliver notifications as the indexing queue's worker handles them
    (index_queue: ObjectCreated indexes that version, ObjectRemoved drops
    or follows what the bucket holds now), one message each, in order."""
    s3 = S3Events("faceprint-test")
    for record in records:
        body = json.dumps(s3.event(record))
        index_queue._handle(w.svc, QueuedMessage(body, "receipt"), set())


@contextmanager
def wired(name: str, tmp_path, monkeypatch) -> Iterator[Wiring]:
    if name == "fake":
        svc = fake_services()
        yield Wiring("fake", svc, lambda who: photo_of(who), lambda: _drained(svc.photos.events), fake_bucket(svc))
        return
    if name == "local":
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "data")}))
        yield Wiring("local", svc, lambda who: photo(REAL[who]), lambda: [])
        return
    from tests.support.fake_rekognition import aws_stage

    with aws_stage(monkeypatch, "dev") as resources:
        resources.events.held = True  # the test plays the events
        svc = wiring.services(Settings.from_env(resources.env))

        def take() -> list[dict]:
            return [{"eventName": "ObjectCreated:Put", **record} for record in resources.events.take()]

        yield Wiring("dev", svc, lambda who: photo(REAL[who]), take, s3_bucket(resources))


def _drained(events: list[dict]) -> list[dict]:
    taken = list(events)
    events.clear()
    return taken


def fake_bucket(svc: Services) -> Bucket:
    photos = svc.photos

    def delete_current_version(key: str) -> None:
        photos.delete_version(key, photos.head(key).version_id)

    return Bucket(
        delete_current_version,
        photos.delete_current,
        photos.undelete,
        lambda key: [version_id for version_id, _ in photos.versions(key)],
    )


def s3_bucket(resources) -> Bucket:
    s3, bucket = resources.s3, resources.bucket

    def latest(key: str, kind: str) -> str:
        listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
        (version,) = [v for v in listed.get(kind, []) if v["Key"] == key and v["IsLatest"]]
        return version["VersionId"]

    def versions(key: str) -> list[str]:
        listed = s3.list_object_versions(Bucket=bucket, Prefix=key)
        return [v["VersionId"] for v in listed.get("Versions", []) + listed.get("DeleteMarkers", []) if v["Key"] == key]

    return Bucket(
        lambda key: s3.delete_object(Bucket=bucket, Key=key, VersionId=latest(key, "Versions")),
        lambda key: s3.delete_object(Bucket=bucket, Key=key),
        lambda key: s3.delete_object(Bucket=bucket, Key=key, VersionId=latest(key, "DeleteMarkers")),
        versions,
    )


def assert_settled(w: Wiring, expected: dict[str, str]) -> None:
    """`expected`: key -> the person its current version shows (the label)."""
    svc = w.svc
    recorded = {face["FaceId"] for key in expected for face in svc.records.faces_of(key)}
    collection = {face["FaceId"] for face in maintenance._all(svc.engine.list_faces)}
    assert collection == recorded, "the collection and the records disagree"
    for key, person in expected.items():
        image = svc.records.get_image(key)
        assert image["status"] == "indexed" and image["etag"] == svc.photos.head(key).etag
        assert image["metadata"] == {"name": person} == svc.photos.head(key).metadata
        assert image["faceCount"] == len(svc.records.faces_of(key)) == 1
        found = searching.search_image(svc, w.photo(person), 80.0, 100)
        assert [m["imageKey"] for m in found["matches"]] == [key], "the photo is not found exactly once"
        assert found["matchedFaces"] == [person]
    assert maintenance.check(svc) == []
