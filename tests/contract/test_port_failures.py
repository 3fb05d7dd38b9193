"""The ports fail alike, whatever is behind them: the same situations on
the in-memory fakes (what the unit tests and the simulation run on), the
embedded adapters (dlib, SQLite, files) and the AWS adapters (the
Rekognition fake, moto S3 and DynamoDB, through the stage's own wiring),
each with the same port-level outcome: the project's exception, or the
None or empty answer the port promises.

Where a wiring cannot meet a situation it is left out, and said so:
- Nothing throttles offline: the embedded wiring has no rate quota (a
  photo too slow to analyse is ImageTooComplex, a different thing).
- A collection cannot be missing offline, nor in the fakes: it is part of
  the engine's own store, made when the engine is (an emptied one is
  `check`'s record_without_face, which `repair` indexes again). On AWS a
  missing collection is a ConfigurationError, on every call.
- A replaced version is gone at once offline (the file store keeps one
  version of a photo); on AWS and in the fakes, once the bucket's lifecycle
  rule has expired it (a day later): until then IndexFaces reads it.
- Versions, delete markers, deleting a version by its id, undeleting and
  the bucket's notifications are S3's (the fakes and moto): the file store
  offline keeps one version, gives each put its own sequencer, and sends
  no events (the upload's own run indexes). moto sends no notifications
  either: on AWS they are tests/support/s3_events.py's, after moto's reply."""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from uuid import uuid4

import pytest

from chalicelib import wiring
from chalicelib.core.config import AWS_CALL_ATTEMPTS, Settings
from chalicelib.core.errors import ConfigurationError, InvalidImage, NotFound, PayloadTooLarge, Throttled
from chalicelib.core.keys import external_image_id
from chalicelib.core.limits import MAX_IMAGE_BYTES
from chalicelib.core.ports import PhotoVersion
from chalicelib.core.records import normalize_sequencer, now
from chalicelib.core.services import Services
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of
from tests.support import wirings
from tests.support.faults import service_error
from tests.support.photos import photo
from tests.support.records import face, image

REAL = {"keanu": "Keanu-Reeves.jpg", "avril": "Avril-Lavigne.jpg"}
WIRINGS = ["fake", "local", "dev"]
THROTTLING = ["fake", "dev"]  # nothing throttles offline
VERSIONED = ["fake", "dev"]  # the file store keeps one version of a photo


@dataclass
class Wiring:
    name: str
    svc: Services
    photo: Callable[[str], bytes]  # a photo of someone, as this wiring's engine reads it
    expire_replaced: Callable[[str], None]  # what the bucket's lifecycle rule does a day later
    throttled: Callable[[str, str], AbstractContextManager] = lambda port, method: nullcontext()
    resources: object = None  # the AWS wiring's clients
    content_type: str = "image/jpeg"
    bucket: wirings.Bucket | None = None  # S3's own tools on a versioned bucket
    take_events: Callable[[], list[dict]] = lambda: []  # the bucket's notifications since the last call

    def store(self, key: str, data: bytes) -> PhotoVersion:
        """Bytes put in the photo store as they are (as a photo copied into
        the bucket, or by reindex --source: no upload's checks)."""
        return self.svc.photos.put(key, data, self.content_type, {}).version

    def collection(self) -> set[str]:
        return set(maintenance._all(self.svc.engine.list_face_ids))


class Stages:
    """The three wirings, each made on first use and kept for the module."""

    def __init__(self, tmp_path_factory, monkeypatch: pytest.MonkeyPatch) -> None:
        self._tmp, self._monkeypatch = tmp_path_factory, monkeypatch
        self._made: dict[str, Wiring] = {}
        self._closing = ExitStack()

    def __getitem__(self, name: str) -> Wiring:
        if name not in self._made:
            self._made[name] = getattr(self, f"_{name}")()
        return self._made[name]

    def close(self) -> None:
        self._closing.close()

    def _fake(self) -> Wiring:
        svc = fake_services()

        @contextmanager
        def throttled(port: str, method: str) -> Iterator[None]:
            fake = getattr(svc, port)
            fake.fail_next(method, _THROTTLE_CODES[port])
            yield
            assert method not in vars(fake), f"{port}.{method} was never called"

        def take_events() -> list[dict]:
            taken = list(svc.photos.events)
            svc.photos.events.clear()
            return taken

        return Wiring(
            "fake",
            svc,
            lambda who: photo_of(who),
            lambda key: svc.photos.expire_noncurrent(),
            throttled,
            None,
            "image/png",
            wirings.fake_bucket(svc),
            take_events,
        )

    def _local(self) -> Wiring:
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(self._tmp.mktemp("data"))}))
        return Wiring("local", svc, lambda who: photo(REAL[who]), lambda key: None)

    def _dev(self) -> Wiring:
        from tests.support.fake_rekognition import aws_stage

        resources = self._closing.enter_context(aws_stage(self._monkeypatch, "dev"))
        resources.events.held = True  # no indexing worker runs: the tests call the ports
        svc = wiring.services(Settings.from_env(resources.env))

        def expire_replaced(key: str) -> None:
            listed = resources.s3.list_object_versions(Bucket=resources.bucket, Prefix=key)
            for version in listed.get("Versions", []):
                if version["Key"] == key and not version["IsLatest"]:
                    resources.s3.delete_object(Bucket=resources.bucket, Key=key, VersionId=version["VersionId"])

        @contextmanager
        def throttled(port: str, method: str) -> Iterator[None]:
            service, operation, status, code = _AWS_THROTTLES[(port, method)]
            if service == "rekognition":
                # IndexFaces and SearchFacesByImage are retried by the stage's pacing, each attempt on
                # its turn (core/pacing.py), as botocore retries the others: throttled on every attempt.
                for _ in range(AWS_CALL_ATTEMPTS if operation in ("IndexFaces", "SearchFacesByImage") else 1):
                    resources.rekognition.fail_next(operation, code)
                yield
                return
            with service_error(getattr(resources, service), operation, status, code):
                yield

        def take_events() -> list[dict]:
            return [{"eventName": "ObjectCreated:Put", **record} for record in resources.events.take()]

        return Wiring(
            "dev",
            svc,
            lambda who: photo(REAL[who]),
            expire_replaced,
            throttled,
            resources,
            bucket=wirings.s3_bucket(resources),
            take_events=take_events,
        )


# Each service's own word for "slow down", for the fakes of its port.
_THROTTLE_CODES = {
    "engine": "ThrottlingException",
    "people": "ThrottlingException",
    "records": "ProvisionedThroughputExceededException",
    "photos": "SlowDown",
}
# The call each port method makes first on AWS, and how the service says it
# is throttling it (S3: a 503 SlowDown, with no body at all on a HEAD).
_AWS_THROTTLES = {
    ("engine", "index_faces"): ("rekognition", "IndexFaces", 400, "ThrottlingException"),
    ("engine", "search_faces_by_image"): (
        "rekognition",
        "SearchFacesByImage",
        400,
        "ProvisionedThroughputExceededException",
    ),
    ("people", "associate_faces"): ("rekognition", "AssociateFaces", 400, "ThrottlingException"),
    ("records", "get_image"): ("dynamodb", "GetItem", 400, "ProvisionedThroughputExceededException"),
    ("records", "put_image"): ("dynamodb", "UpdateItem", 400, "ProvisionedThroughputExceededException"),
    ("records", "commit_faces"): ("dynamodb", "UpdateItem", 400, "ThrottlingException"),
    ("records", "list_pending"): ("dynamodb", "Query", 400, "RequestLimitExceeded"),
    ("photos", "head"): ("s3", "HeadObject", 503, "SlowDown"),
    ("photos", "read"): ("s3", "GetObject", 503, "SlowDown"),
    ("photos", "put"): ("s3", "PutObject", 503, "SlowDown"),
    ("photos", "list"): ("s3", "ListObjectsV2", 503, "SlowDown"),
}


@pytest.fixture(scope="module")
def stages(tmp_path_factory) -> Iterator[Stages]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        made = Stages(tmp_path_factory, monkeypatch)
        try:
            yield made
        finally:
            made.close()


@pytest.fixture(params=WIRINGS)
def wired(request, stages) -> Wiring:
    return stages[request.param]


@pytest.fixture(params=THROTTLING)
def throttling(request, stages) -> Wiring:
    return stages[request.param]


@pytest.fixture(params=VERSIONED)
def versioned(request, stages) -> Wiring:
    return stages[request.param]


def unique(name: str) -> str:
    """A key of its own for each test: the wirings are shared by the module."""
    return f"{uuid4().hex[:8]}-{name}"


# IndexFaces on a version that is gone.


def test_indexing_a_deleted_version_is_not_found(wired):
    key = unique("deleted.jpg")
    version = wired.store(key, wired.photo("keanu"))
    wired.svc.photos.delete(key)
    before = wired.collection()
    with pytest.raises(NotFound):
        wired.svc.engine.index_faces(version, external_image_id(key))
    assert wired.collection() == before


def test_indexing_a_replaced_version_once_it_is_gone_is_not_found(wired):
    key = unique("replaced.jpg")
    old = wired.store(key, wired.photo("keanu"))
    wired.store(key, wired.photo("avril"))
    wired.expire_replaced(key)
    before = wired.collection()
    with pytest.raises(NotFound):
        wired.svc.engine.index_faces(old, external_image_id(key))
    assert wired.collection() == before


# Stored photos the engine cannot take.


def _not_an_image(wired: Wiring) -> bytes:
    return b"Just some text that someone copied into the bucket as a photo.\n" * 20


def _truncated(wired: Wiring) -> bytes:
    whole = wired.photo("keanu")
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("unreadable", [_not_an_image, _truncated], ids=["text", "truncated"])
def test_a_stored_photo_that_cannot_be_read_is_an_invalid_image_everywhere(wired, unreadable):
    key = unique("unreadable.jpg")
    version = wired.store(key, unreadable(wired))
    with pytest.raises(InvalidImage) as raised:
        wired.svc.engine.index_faces(version, external_image_id(key))
    assert type(raised.value) is InvalidImage
    assert raised.value.message


def test_a_stored_photo_over_15_mb_is_too_large_everywhere(wired):
    """A readable photo (a JPEG or PNG with data after its end, which
    decoders skip) over Rekognition's limit for a photo in S3."""
    key = unique("huge.jpg")
    version = wired.store(key, wired.photo("keanu") + bytes(MAX_IMAGE_BYTES))
    before = wired.collection()
    with pytest.raises(PayloadTooLarge):
        wired.svc.engine.index_faces(version, external_image_id(key))
    assert wired.collection() == before


# The bucket's versions, as S3 keeps them (issue 25: the fake was kinder).


def _changes(wired: Wiring, key: str) -> list[tuple[str, str | None]]:
    """The notifications of `key` since the last look: (event name, versionId)."""
    return [(r["eventName"], r.get("versionId")) for r in wired.take_events() if r["key"] == key]


def test_a_put_names_its_version_and_no_sequencer_only_its_event_does(versioned):
    """PutObject's reply has a VersionId and an ETag, no sequencer and no
    LastModified; HeadObject's has LastModified, no sequencer. The event
    has the sequencer."""
    key = unique("put.jpg")
    wired = versioned
    wired.take_events()
    stored = wired.svc.photos.put(key, wired.photo("keanu"), wired.content_type, {})
    head = wired.svc.photos.head(key)
    assert stored.version_id and stored.sequencer is None and stored.stored_at is None
    assert (head.version_id, head.etag, head.sequencer) == (stored.version_id, stored.etag, None)
    assert head.stored_at  # LastModified
    (event,) = [r for r in wired.take_events() if r["key"] == key]
    assert event["eventName"].startswith("ObjectCreated:")
    assert (event["eTag"], event["versionId"]) == (stored.etag, stored.version_id)
    assert int(event["sequencer"], 16) > 0


def test_a_delete_marker_hides_the_photo_and_an_undelete_brings_it_back(versioned):
    key = unique("hidden.jpg")
    wired, photos = versioned, versioned.svc.photos
    stored = wired.store(key, wired.photo("keanu"))
    wired.take_events()
    wired.bucket.delete_marker(key)
    assert photos.head(key) is None
    with pytest.raises(NotFound):
        photos.read(key)
    assert key not in {listed.key for listed in maintenance._all(photos.list)}
    [(name, marker)] = _changes(wired, key)
    assert name == "ObjectRemoved:DeleteMarkerCreated" and marker not in (None, stored.version_id)
    wired.bucket.undelete(key)
    assert _changes(wired, key) == [("ObjectRemoved:Delete", marker)]  # nothing says a version is back
    head = photos.head(key)
    assert (head.version_id, head.etag) == (stored.version_id, stored.etag)
    assert photos.read(key) == wired.photo("keanu")


def test_deleting_the_current_version_by_its_id_makes_the_one_before_current(versioned):
    key = unique("back.jpg")
    wired, photos = versioned, versioned.svc.photos
    old = wired.store(key, wired.photo("keanu"))
    new = wired.store(key, wired.photo("avril"))
    wired.take_events()
    wired.bucket.delete_current_version(key)
    assert _changes(wired, key) == [("ObjectRemoved:Delete", new.version_id)]
    head = photos.head(key)
    assert (head.version_id, head.etag) == (old.version_id, old.etag)
    assert {listed.key: listed.etag for listed in maintenance._all(photos.list)}[key] == old.etag
    with pytest.raises(NotFound):
        wired.svc.engine.index_faces(new, external_image_id(key))


def test_the_events_of_a_key_come_with_sequencers_in_the_order_of_its_changes(versioned):
    key = unique("order.jpg")
    wired = versioned
    wired.take_events()
    wired.store(key, wired.photo("keanu"))
    wired.store(key, wired.photo("avril"))
    wired.bucket.delete_marker(key)
    wired.bucket.undelete(key)
    wired.bucket.delete_current_version(key)
    events = [r for r in wired.take_events() if r["key"] == key]
    assert [r["eventName"].split(":")[0] for r in events] == ["ObjectCreated"] * 2 + ["ObjectRemoved"] * 3
    sequencers = [normalize_sequencer(r["sequencer"]) for r in events]
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == len(sequencers)


def test_the_ports_delete_takes_every_version_and_delete_marker(versioned):
    """What DELETE /images does: no version left to come back."""
    key = unique("all.jpg")
    wired = versioned
    first = wired.store(key, wired.photo("keanu"))
    second = wired.store(key, wired.photo("avril"))
    wired.bucket.delete_marker(key)
    wired.take_events()
    wired.svc.photos.delete(key)
    assert wired.bucket.versions(key) == []
    assert wired.svc.photos.head(key) is None
    removed = _changes(wired, key)
    assert {name for name, _ in removed} == {"ObjectRemoved:Delete"} and len(removed) == 3
    assert {first.version_id, second.version_id} < {version for _, version in removed}


# Missing photos, faces, records and people: what each port says.


def test_a_missing_photo_has_no_head_cannot_be_read_and_deletes_quietly(wired):
    key = unique("missing.jpg")
    assert wired.svc.photos.head(key) is None
    with pytest.raises(NotFound):
        wired.svc.photos.read(key)
    wired.svc.photos.delete(key)
    stored = wired.store(key, wired.photo("keanu"))
    wired.svc.photos.delete(key)
    assert wired.svc.photos.head(key) is None
    with pytest.raises(NotFound):
        wired.svc.photos.read(key)
    assert key not in {listed.key for listed in maintenance._all(wired.svc.photos.list)}
    assert stored.key == key


def test_faces_and_users_the_collection_lacks(wired):
    engine, people = wired.svc.engine, wired.svc.people
    face_id, user_id = str(uuid4()), unique("nobody")
    engine.delete_faces([face_id])  # ids already gone are ignored
    assert engine.get_faces([face_id]) == {}
    assert people.owners([face_id]) == {}
    assert people.faces_of_user(user_id) == []
    people.delete_user(user_id)  # a user already gone is not an error
    for call in (
        lambda: people.associate_faces(user_id, [face_id], 75.0),
        lambda: people.disassociate_faces(user_id, [face_id]),
        lambda: people.search_users(face_id, 80.0, 5),
        lambda: people.search_faces(face_id, 80.0, 5),
    ):
        with pytest.raises(NotFound):
            call()
    people.create_user(user_id)
    people.create_user(user_id)  # one that exists already is not an error
    assert user_id in people.list_users()
    people.delete_user(user_id)
    assert user_id not in people.list_users()


def test_records_and_people_the_store_lacks(wired):
    records = wired.svc.records
    key, face_id, person_id = unique("missing.jpg"), str(uuid4()), unique("nobody")
    assert records.get_image(key) is None
    assert records.faces_of(key) == []
    assert records.get_face(face_id) is None
    assert records.find_faces([face_id]) == {}
    assert records.remove_image(key) == []
    records.delete_face(face_id)  # a face already gone is not an error
    assert records.put_image(image(key, status="pending"), 12345) is None  # no record at that revision
    assert records.commit_faces(image(key, count=1), [face(face_id, key)], 12345) is None
    assert records.get_image(key) is None and records.get_face(face_id) is None
    assert records.get_person(person_id) is None
    assert records.rename_person(person_id, "Nobody", now()) is None
    assert records.remove_person(person_id, now()) is None
    assert records.person_deleted_at(person_id) is None
    assert records.associate_faces(person_id, [face_id]) is None
    assert records.disassociate_faces(person_id, [face_id]) == []
    assert records.find_people([person_id]) == {}
    assert records.faces_of_person(person_id) == []


# Throttling past the SDK's retries: Throttled, and nothing done.


def _index(w: Wiring) -> Callable[[], object]:
    key = unique("throttled.jpg")
    version = w.store(key, w.photo("keanu"))
    return lambda: w.svc.engine.index_faces(version, external_image_id(key))


def _search(w: Wiring) -> Callable[[], object]:
    return lambda: w.svc.engine.search_faces_by_image(w.photo("keanu"), 80.0, 10)


def _associate(w: Wiring) -> Callable[[], object]:
    user_id = unique("someone")
    w.svc.people.create_user(user_id)
    return lambda: w.svc.people.associate_faces(user_id, [str(uuid4())], 75.0)


def _get_image(w: Wiring) -> Callable[[], object]:
    return lambda: w.svc.records.get_image(unique("throttled.jpg"))


def _put_image(w: Wiring) -> Callable[[], object]:
    return lambda: w.svc.records.put_image(image(unique("throttled.jpg"), status="pending"), None)


def _commit(w: Wiring) -> Callable[[], object]:
    key = unique("throttled.jpg")
    pending = w.svc.records.put_image(image(key, status="pending"), None)
    return lambda: w.svc.records.commit_faces(image(key, count=1), [face(str(uuid4()), key)], pending["revision"])


def _list_pending(w: Wiring) -> Callable[[], object]:
    return lambda: w.svc.records.list_pending(now(), 10)


def _head(w: Wiring) -> Callable[[], object]:
    key = unique("throttled.jpg")
    w.store(key, w.photo("keanu"))
    return lambda: w.svc.photos.head(key)


def _read(w: Wiring) -> Callable[[], object]:
    key = unique("throttled.jpg")
    w.store(key, w.photo("keanu"))
    return lambda: w.svc.photos.read(key)


def _put(w: Wiring) -> Callable[[], object]:
    return lambda: w.store(unique("throttled.jpg"), w.photo("keanu"))


def _list(w: Wiring) -> Callable[[], object]:
    return lambda: w.svc.photos.list(10)


# port.method -> what sets the situation up and returns the call to throttle.
THROTTLES = {
    "engine.index_faces": _index,
    "engine.search_faces_by_image": _search,
    "people.associate_faces": _associate,
    "records.get_image": _get_image,
    "records.put_image": _put_image,
    "records.commit_faces": _commit,
    "records.list_pending": _list_pending,
    "photos.head": _head,
    "photos.read": _read,
    "photos.put": _put,
    "photos.list": _list,
}


def everything(w: Wiring) -> dict:
    """What the stores and the collection hold, to see that a throttled call did nothing."""
    svc = w.svc
    return {
        "images": sorted((s.key, s.etag, s.status) for s in maintenance._all(svc.records.list_image_states)),
        "faces": sorted(f.face_id for f in maintenance._all(svc.records.list_face_keys)),
        "photos": sorted(p.key for p in maintenance._all(svc.photos.list)),
        "collection": w.collection(),
    }


@pytest.mark.parametrize("call", THROTTLES)
def test_a_throttled_call_is_throttled_everywhere_and_does_nothing(throttling, call):
    """Each port's calls, throttled by their service (past botocore's own
    retries): Throttled, which indexing takes for back-pressure, never for
    a failed attempt; and the throttled call took no effect (a commit
    leaves no face record behind)."""
    throttled_call = THROTTLES[call](throttling)
    before = everything(throttling)
    with throttling.throttled(*call.split(".")), pytest.raises(Throttled):
        throttled_call()
    assert everything(throttling) == before


# A collection that does not exist.


def test_on_aws_every_call_on_a_missing_collection_is_a_configuration_error(stages):
    w = stages["dev"]
    rekognition, collection = w.resources.rekognition, w.svc.settings.collection
    key = unique("orphan.jpg")
    version = w.store(key, w.photo("keanu"))
    rekognition.delete_collection(CollectionId=collection)
    try:
        engine, people = w.svc.engine, w.svc.people
        for call in (
            lambda: engine.index_faces(version, external_image_id(key)),
            lambda: engine.search_faces_by_image(w.photo("keanu"), 80.0, 10),
            lambda: engine.list_face_ids(10),
            lambda: engine.get_faces([str(uuid4())]),
            lambda: engine.delete_faces([str(uuid4())]),
            lambda: engine.describe(),
            lambda: people.create_user("someone"),
            lambda: people.delete_user("someone"),
            lambda: people.associate_faces("someone", [str(uuid4())], 75.0),
            lambda: people.faces_of_user("someone"),
            lambda: people.list_users(),
        ):
            with pytest.raises(ConfigurationError) as raised:
                call()
            assert repr(collection) in str(raised.value) and "make aws-setup STAGE=dev" in str(raised.value)
    finally:
        rekognition.create_collection(CollectionId=collection)


@pytest.mark.parametrize("name", ["fake", "local"])
def test_offline_and_in_the_fakes_the_collection_comes_with_the_engine(name, tmp_path):
    """Nothing to create first and nothing to lose but its faces: a new
    engine on an empty store answers at once."""
    if name == "fake":
        svc = fake_services()
    else:
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "new")}))
    assert svc.engine.describe()["faces"] == 0
    assert svc.engine.list_face_ids(10).items == []
    assert svc.people.list_users() == []


def test_on_aws_a_missing_bucket_is_a_configuration_error_never_a_missing_photo(stages):
    """S3 answers a HEAD request with a bare 404 (a reply to HEAD has no
    body) for a missing bucket as for a missing key: were a missing bucket
    taken for a missing photo, indexing and the re-drive would remove the
    records of every photo they looked at. Offline and in the fakes the
    store is made with the engine: never missing."""
    from chalicelib.aws.s3 import S3PhotoStore

    w = stages["dev"]
    s3 = w.resources.s3
    nowhere = S3PhotoStore(s3, "faceprint-dev-no-such-bucket", stage="dev")
    with service_error(s3, "HeadObject", 404, "NoSuchBucket"), pytest.raises(ConfigurationError) as raised:
        nowhere.head("portrait.jpg")
    assert "'faceprint-dev-no-such-bucket'" in str(raised.value)
    for call in (lambda: nowhere.read("portrait.jpg"), lambda: nowhere.list(10)):
        with pytest.raises(ConfigurationError):
            call()
    with service_error(s3, "HeadObject", 404, "NoSuchKey"):
        assert w.svc.photos.head(unique("missing.jpg")) is None
