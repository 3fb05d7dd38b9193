"""`repair` fixes whatever `check` reports. For every kind of disagreement
check can report (chalicelib/ops/maintenance.py's constants), a test makes
it the way it happens (a crash at a given step, a lost S3 event, a photo
deleted from the bucket by hand, a store that lost something), runs check,
which must report exactly that, then repair, then check again: clean; and
what the user sees is right again. Each runs on every wiring where the kind
can occur: the in-memory fakes, the embedded stage (dlib, SQLite, files) and
the AWS wiring (moto S3 and DynamoDB, the Rekognition fake, the indexing
queue's workers).

Where a kind cannot occur on a wiring, it is left out, and said so at its
test. Repair leaves alone what an indexing run under way may still finish
(an attempt begun less than RUN_GRACE_SECONDS ago, listed in the record's
`running`): the states here have no such attempt left on them (the run
that follows a crash does so a while later, as the re-drive would, and
takes the crashed attempt off), but one, where repair waits until the
crashed attempt is surely over."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.core import indexing, library, people, records, synthetic
from chalicelib.core.config import Settings
from chalicelib.core.errors import NotFound
from chalicelib.core.ports import PhotoVersion
from chalicelib.core.records import RUN_GRACE_SECONDS, iso_after, now
from chalicelib.core.services import Services
from chalicelib.ops import maintenance, seeding
from chalicelib.ops.maintenance import Disagreement
from chalicelib.ops.memory import fake_services, photo_of
from tests.support.faults import Crash, crash_at, crashing_before
from tests.support.photos import photo

REAL = {"keanu": "Keanu-Reeves.jpg", "avril": "Avril-Lavigne.jpg"}
KEY = "portrait.jpg"
# Past any attempt a crashed run left on a record, and past the re-drive's wait.
LATER_SECONDS = RUN_GRACE_SECONDS + indexing.REDRIVE_AFTER_SECONDS + 1


@dataclass
class Archive:
    name: str
    svc: Services
    photo: Callable[[str], bytes]
    resources: object = None  # the AWS wiring's clients and bucket events

    @property
    def content_type(self) -> str:
        return "image/png" if self.name == "fake" else "image/jpeg"

    def later(self) -> Services:
        """The services with the clock past any attempt under way (the
        scheduled check's, or a re-drive's, a while after a crash)."""
        return replace(self.svc, clock=lambda: iso_after(now(), LATER_SECONDS))

    def upload(self, key: str, who: str, metadata: dict | None = None) -> dict:
        """An upload through the API, indexed as its wiring does it
        (offline: before the reply; on AWS: by the queue's worker)."""
        indexing.upload_image(self.svc, key, self.photo(who), metadata or {})
        if self.resources is not None:
            self.resources.events.deliver()
        image = self.svc.records.get_image(key)
        assert image["status"] == "indexed", image
        return image

    def upload_pending(self, key: str, who: str, metadata: dict | None = None) -> PhotoVersion:
        """An upload whose indexing never ran (on AWS: its event was lost);
        the version its run would index."""
        indexing.upload_image(replace(self.svc, index_on_upload=False), key, self.photo(who), metadata or {})
        self.lose_events()
        return self.svc.photos.head(key).version

    def put_by_hand(self, key: str, data: bytes, metadata: dict | None = None) -> None:
        """A photo put straight into the store (the bucket), its event lost."""
        self.svc.photos.put(key, data, self.content_type, metadata or {})
        self.lose_events()

    def lose_events(self) -> None:
        if self.resources is not None:
            self.resources.events.take()

    def crashing_mid_commit(self):
        """A commit that stops after the face records are written, before
        the image record lists them (DynamoDB's two steps; the fake models
        them). SQLite commits both at once: no such state offline."""
        if self.name == "fake":
            return _crash_between_commit_steps(self.svc.records)
        return crash_at(
            self.resources.dynamodb, "UpdateItem", lambda params: "faceIds = :ids" in params.get("UpdateExpression", "")
        )


@contextmanager
def _crash_between_commit_steps(records) -> Iterator[None]:
    def crash() -> None:
        records.between_commit_steps = lambda: None
        raise Crash("crashed between the commit's steps")

    records.between_commit_steps = crash
    try:
        yield
    finally:
        records.between_commit_steps = lambda: None


@pytest.fixture
def archive(request, tmp_path, monkeypatch) -> Iterator[Archive]:
    if request.param == "fake":
        yield Archive("fake", fake_services(), lambda who: photo_of(who))
        return
    if request.param == "local":
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "data")}))
        yield Archive("local", svc, lambda who: photo(REAL[who]))
        return
    from tests.support.fake_rekognition import aws_stage

    with aws_stage(monkeypatch, "dev") as resources:
        resources.events.held = True  # delivered by Archive.upload, or lost
        yield Archive("dev", wiring.services(Settings.from_env(resources.env)), lambda who: photo(REAL[who]), resources)


def on(*names: str):
    """Run the test on these wirings (the real ones are slow: dlib, moto)."""
    params = [pytest.param(name, marks=() if name == "fake" else pytest.mark.slow) for name in names]
    return pytest.mark.parametrize("archive", params, indirect=True)


EVERY_WIRING = ("fake", "local", "dev")


def check_repair_check(archive: Archive, expected: list[Disagreement]) -> None:
    """check reports exactly `expected`; repair; check is clean."""
    found = maintenance.check(archive.svc)
    assert sorted(found, key=str) == sorted(expected, key=str)
    maintenance.repair(archive.svc, found)
    assert maintenance.check(archive.svc) == []


def face_ids(svc: Services, key: str) -> list[str]:
    return [face["FaceId"] for face in svc.records.faces_of(key)]


def collection(svc: Services) -> set[str]:
    return set(maintenance._all(svc.engine.list_face_ids))


def assert_indexed(archive: Archive, key: str, faces: int = 1) -> None:
    """The photo is indexed from its current version, its faces once in the
    records and in the collection."""
    svc = archive.svc
    image = svc.records.get_image(key)
    assert image["status"] == "indexed" and image["etag"] == svc.photos.head(key).etag
    ids = face_ids(svc, key)
    assert len(ids) == image["faceCount"] == faces
    assert set(ids) <= collection(svc)


# The collection and the records.


@on(*EVERY_WIRING)
def test_a_face_the_collection_lost_is_indexed_again(archive):
    archive.upload(KEY, "keanu")
    (lost,) = face_ids(archive.svc, KEY)
    archive.svc.engine.delete_faces([lost])
    check_repair_check(archive, [Disagreement(maintenance.RECORD_WITHOUT_FACE, KEY, lost)])
    assert_indexed(archive, KEY)


@on(*EVERY_WIRING)
def test_the_faces_of_a_run_that_died_before_its_commit_leave_the_collection(archive):
    """A run dies after IndexFaces, before its commit; a later run indexes
    the photo: the first run's faces are in the collection, named by no record."""
    version = archive.upload_pending(KEY, "keanu")
    with pytest.raises(Crash):
        indexing.index_photo(crashing_before(archive.svc, "records.commit_faces"), KEY, version)
    stray = collection(archive.svc)
    indexing.index_photo(archive.later(), KEY)
    (kept,) = face_ids(archive.svc, KEY)
    assert len(stray) == 1 and kept not in stray
    (stray_id,) = stray
    check_repair_check(archive, [Disagreement(maintenance.FACE_WITHOUT_RECORD, None, stray_id)])
    assert collection(archive.svc) == {kept}
    assert_indexed(archive, KEY)


@on("fake", "dev")
def test_face_records_of_a_commit_cut_short_whose_photo_was_then_deleted_go(archive):
    """A commit stops after writing its face records, before the image
    record lists them; then the user deletes the photo. The face records
    name an image that is no more. (SQLite writes a commit in one
    transaction: not offline.)"""
    version = archive.upload_pending(KEY, "keanu")
    with archive.crashing_mid_commit(), pytest.raises(Crash):
        indexing.index_photo(archive.svc, KEY, version)
    library.delete_image(archive.svc, KEY)
    archive.lose_events()
    (orphan,) = collection(archive.svc)
    check_repair_check(archive, [Disagreement(maintenance.FACE_WITHOUT_IMAGE, KEY, orphan)])
    assert collection(archive.svc) == set()
    assert list(maintenance._all(archive.svc.records.list_face_keys)) == []


@on("fake", "dev")
def test_face_records_no_image_lists_go_while_the_listed_faces_stay(archive):
    """A reindex's commit stops after writing its face records; a later run
    indexes the photo: the cut-short run's face items (DynamoDB: face items
    no image lists) are left, in the records and in the collection.
    (SQLite writes a commit in one transaction: not offline.)"""
    archive.upload(KEY, "keanu")
    with archive.crashing_mid_commit(), pytest.raises(Crash):
        indexing.index_photo(archive.svc, KEY, force=True)
    listed_before = face_ids(archive.svc, KEY)
    indexing.index_photo(archive.later(), KEY)
    (kept,) = face_ids(archive.svc, KEY)
    unlisted = [face.face_id for face in maintenance._all(archive.svc.records.list_face_keys) if face.face_id != kept]
    assert len(unlisted) == 1 and unlisted[0] not in listed_before
    check_repair_check(archive, [Disagreement(maintenance.FACE_NOT_LISTED, KEY, unlisted[0])])
    assert collection(archive.svc) == {kept}
    assert [face.face_id for face in maintenance._all(archive.svc.records.list_face_keys)] == [kept]
    assert_indexed(archive, KEY)


# Photos and their records.


@on(*EVERY_WIRING)
def test_a_photo_put_in_the_bucket_whose_event_was_lost_is_indexed(archive):
    archive.put_by_hand(KEY, archive.photo("keanu"))
    check_repair_check(archive, [Disagreement(maintenance.PHOTO_NOT_INDEXED, KEY)])
    assert_indexed(archive, KEY)


@on(*EVERY_WIRING)
def test_a_new_version_whose_event_was_lost_replaces_the_old_ones_faces(archive):
    archive.upload(KEY, "keanu", {"name": "Keanu"})
    old = face_ids(archive.svc, KEY)
    archive.put_by_hand(KEY, archive.photo("avril"), {"name": "Avril"})
    check_repair_check(archive, [Disagreement(maintenance.PHOTO_NOT_INDEXED, KEY)])
    assert_indexed(archive, KEY)
    assert archive.svc.records.get_image(KEY)["metadata"] == {"name": "Avril"}
    assert not set(old) & (collection(archive.svc) | set(face_ids(archive.svc, KEY)))


@on(*EVERY_WIRING)
def test_the_same_bytes_put_again_with_other_metadata_whose_event_was_lost_take_it(archive):
    """Only the time it was stored tells this version from the recorded
    one (S3's LastModified, to the second: on AWS it comes a second later)."""
    archive.upload(KEY, "keanu", {"name": "Keanu"})
    if archive.name == "fake":
        archive.svc.photos.clock = lambda: iso_after(now(), 1)
    elif archive.name == "dev":
        time.sleep(1.05)
    archive.put_by_hand(KEY, archive.photo("keanu"), {"name": "Keanu Reeves"})
    check_repair_check(archive, [Disagreement(maintenance.PHOTO_NOT_INDEXED, KEY)])
    assert_indexed(archive, KEY)
    assert archive.svc.records.get_image(KEY)["metadata"] == {"name": "Keanu Reeves"}


@on(*EVERY_WIRING)
def test_a_photo_left_pending_is_indexed(archive):
    archive.upload_pending(KEY, "keanu")
    check_repair_check(archive, [Disagreement(maintenance.PHOTO_PENDING, KEY)])
    assert_indexed(archive, KEY)


@on(*EVERY_WIRING)
def test_a_photo_whose_run_died_is_left_to_it_until_its_attempt_is_surely_over(archive, monkeypatch):
    """A run on another machine (a Lambda) claimed the photo and died before
    IndexFaces: its attempt is on the record. While it may still be under
    way (a Lambda runs up to 15 minutes), repair leaves the photo alone;
    after that it indexes it."""
    version = archive.upload_pending(KEY, "keanu")
    monkeypatch.setattr(records.PROCESSES, "this", lambda: "169.254.76.1:8:1123")  # a Lambda's sandbox
    with pytest.raises(Crash):
        indexing.index_photo(crashing_before(archive.svc, "engine.index_faces"), KEY, version)
    monkeypatch.undo()
    found = maintenance.check(archive.svc)
    assert found == [Disagreement(maintenance.PHOTO_PENDING, KEY)]
    maintenance.repair(archive.svc, found)
    assert archive.svc.records.get_image(KEY)["status"] == "pending"
    assert maintenance.check(archive.svc) == found
    maintenance.repair(archive.later(), found)
    assert maintenance.check(archive.svc) == []
    assert_indexed(archive, KEY)


@on(*EVERY_WIRING)
def test_an_enrolment_a_crash_left_owed_is_done(archive):
    """The commit took; the run died before enrolling the face by upload."""
    people.put_person(archive.svc, "pat", "Pat")
    version = archive.upload_pending(KEY, "keanu", {"person": "pat"})
    with pytest.raises(Crash):
        indexing.index_photo(crashing_before(archive.svc, "records.get_person"), KEY, version)
    assert archive.svc.records.get_image(KEY)["owed"]["enrol"]
    check_repair_check(archive, [Disagreement(maintenance.WORK_OWED, KEY)])
    assert_indexed(archive, KEY)
    assert [face["FaceId"] for face in archive.svc.records.faces_of_person("pat")] == face_ids(archive.svc, KEY)
    assert archive.svc.people.faces_of_user("pat") == face_ids(archive.svc, KEY)


@on(*EVERY_WIRING)
def test_faces_a_crash_left_owed_to_the_collection_leave_it(archive):
    """A reindex committed; the run died before the faces it replaced left
    the collection. Those faces, named by no record now, are reported too;
    repair leaves them to the work owed, which retires them."""
    archive.upload(KEY, "keanu")
    (old,) = face_ids(archive.svc, KEY)
    with pytest.raises(Crash):
        indexing.index_photo(crashing_before(archive.svc, "engine.delete_faces"), KEY, force=True)
    check_repair_check(
        archive,
        [Disagreement(maintenance.WORK_OWED, KEY), Disagreement(maintenance.FACE_WITHOUT_RECORD, None, old)],
    )
    assert_indexed(archive, KEY)
    assert old not in collection(archive.svc)


@on(*EVERY_WIRING)
def test_a_record_whose_photo_was_deleted_by_hand_goes_with_its_faces(archive):
    archive.upload(KEY, "keanu")
    other = archive.upload("other.jpg", "avril")
    if archive.name == "dev":  # a plain delete in a versioned bucket: a delete marker
        archive.resources.s3.delete_object(Bucket=archive.resources.bucket, Key=KEY)
    else:
        archive.svc.photos.delete(KEY)
    archive.lose_events()
    check_repair_check(archive, [Disagreement(maintenance.RECORD_WITHOUT_PHOTO, KEY)])
    assert archive.svc.records.get_image(KEY) is None
    assert collection(archive.svc) == set(face_ids(archive.svc, "other.jpg"))
    assert archive.svc.records.get_image("other.jpg")["etag"] == other["etag"]


# Synthetic images (make seed): offline only, and the fakes.


def _seed_one(archive: Archive) -> tuple[str, str]:
    """One synthetic image as `make seed` records it: (its key, its face)."""
    if archive.name == "local":
        key = synthetic.key(seeding.seed(archive.svc, 1), 1)
        (face_id,) = face_ids(archive.svc, key)
        return key, face_id
    key, face_id = synthetic.key("0badcafe", 1), "0badcafe-5eed-4000-8000-000000000001"
    face = {
        "FaceId": face_id,
        "BoundingBox": {"Width": 0.3, "Height": 0.4, "Left": 0.3, "Top": 0.2},
        "ImageId": "0badcafe-5eed-4000-9000-000000000001",
        "ExternalImageId": synthetic.external_image_id(key),
        "Confidence": 99.9,
    }
    image = {
        "key": key,
        "status": "indexed",
        "metadata": {**synthetic.METADATA, "name": "Synthetic person 1"},
        "size": 0,
        "etag": synthetic.ETAG,
        "faceCount": 1,
        "updatedAt": now(),
    }
    archive.svc.records.commit_faces(image, [{**face, "imageKey": key}], None)
    archive.svc.engine.faces[face_id] = {**face, "_person": "synthetic"}
    return key, face_id


@on("fake", "local")
def test_a_synthetic_image_that_lost_its_face_is_removed(archive):
    """Its face record and its collection face lost (a restore that missed
    them), its record still counting the face. There is no photo to index
    again: the image goes. (`make seed` is offline only: not on AWS.)"""
    archive.upload(KEY, "keanu")
    key, face_id = _seed_one(archive)
    if archive.name == "local":
        archive.svc.records._db.write("DELETE FROM faces WHERE face_id = ?", (face_id,))
    else:
        del archive.svc.records.faces[face_id]
    archive.svc.engine.delete_faces([face_id])
    check_repair_check(archive, [Disagreement(maintenance.SYNTHETIC_INCOMPLETE, key)])
    assert archive.svc.records.get_image(key) is None
    assert_indexed(archive, KEY)


# People.


def _person_with_a_face(archive: Archive) -> str:
    """Person `pat` with the one face of KEY; returns the face's id."""
    archive.upload(KEY, "keanu")
    (face_id,) = face_ids(archive.svc, KEY)
    people.put_person(archive.svc, "pat", "Pat")
    assert people.associate_faces(archive.svc, "pat", [face_id], 75.0)["associatedFaces"] == [{"FaceId": face_id}]
    return face_id


def assert_faces_of_pat(archive: Archive, expected: list[str]) -> None:
    svc = archive.svc
    assert [face["FaceId"] for face in svc.records.faces_of_person("pat")] == expected
    assert svc.people.faces_of_user("pat") == expected
    assert svc.records.get_person("pat")["faceCount"] == len(expected)


@on(*EVERY_WIRING)
def test_a_person_whose_user_the_collection_lost_gets_it_back_with_their_faces(archive):
    face_id = _person_with_a_face(archive)
    archive.svc.people.delete_user("pat")  # a collection rebuilt without its Users
    check_repair_check(archive, [Disagreement(maintenance.PERSON_WITHOUT_USER, person_id="pat")])
    assert_faces_of_pat(archive, [face_id])


@on(*EVERY_WIRING)
def test_a_person_whose_create_was_cut_short_gets_their_user(archive):
    """PUT /people/pat wrote the person record, then died before the User."""
    with pytest.raises(Crash):
        people.put_person(crashing_before(archive.svc, "people.create_user"), "pat", "Pat")
    check_repair_check(archive, [Disagreement(maintenance.PERSON_WITHOUT_USER, person_id="pat")])
    assert archive.svc.people.list_users() == ["pat"]
    assert_faces_of_pat(archive, [])


@on(*EVERY_WIRING)
def test_a_user_left_by_a_person_delete_cut_short_goes(archive):
    """DELETE /people/pat removed the person, then died before the User."""
    face_id = _person_with_a_face(archive)
    with pytest.raises(Crash):
        people.delete_person(crashing_before(archive.svc, "people.delete_user"), "pat")
    check_repair_check(archive, [Disagreement(maintenance.USER_WITHOUT_PERSON, person_id="pat")])
    assert archive.svc.people.list_users() == []
    assert archive.svc.records.get_person("pat") is None
    assert archive.svc.people.owners([face_id]) == {face_id: None}
    assert "UserId" not in archive.svc.records.get_face(face_id)


@on(*EVERY_WIRING)
def test_a_face_the_collection_took_from_a_person_leaves_their_record(archive):
    """ "Not this person" took the face off the User, then died before the
    records followed: the collection holds the truth about whose face it is."""
    face_id = _person_with_a_face(archive)
    with pytest.raises(Crash):
        people.disassociate_face(crashing_before(archive.svc, "records.disassociate_faces"), "pat", face_id)
    check_repair_check(archive, [Disagreement(maintenance.FACE_OWNER, face_id=face_id, person_id="pat")])
    assert_faces_of_pat(archive, [])


@on(*EVERY_WIRING)
def test_a_face_the_collection_gave_a_person_joins_their_record(archive):
    """An association took in the collection, then died before the records followed."""
    archive.upload(KEY, "keanu")
    (face_id,) = face_ids(archive.svc, KEY)
    people.put_person(archive.svc, "pat", "Pat")
    with pytest.raises(Crash):
        people.associate_faces(crashing_before(archive.svc, "records.associate_faces"), "pat", [face_id], 75.0)
    check_repair_check(archive, [Disagreement(maintenance.FACE_OWNER, face_id=face_id, person_id="pat")])
    assert_faces_of_pat(archive, [face_id])


@on("dev")
def test_a_face_naming_a_deleted_person_is_theirs_no_more(archive):
    """DELETE /people/pat made the person a tombstone, then died before
    their faces left them (DynamoDB: one transaction per face); the same
    request again deletes the User and answers 404. The face record still
    names the deleted person. (The fakes and SQLite take the faces off a
    person with the person: not there.)"""
    face_id = _person_with_a_face(archive)
    with crash_at(archive.resources.dynamodb, "TransactWriteItems"), pytest.raises(Crash):
        people.delete_person(archive.svc, "pat")
    with pytest.raises(NotFound):
        people.delete_person(archive.svc, "pat")
    assert archive.svc.records.get_face(face_id)["UserId"] == "pat"
    check_repair_check(archive, [Disagreement(maintenance.FACE_OWNER, face_id=face_id, person_id="pat")])
    assert "UserId" not in archive.svc.records.get_face(face_id)
    assert archive.svc.people.owners([face_id]) == {face_id: None}
    assert archive.svc.people.list_users() == []


def test_every_kind_check_reports_has_a_test_here():
    kinds = {
        value
        for name, value in vars(maintenance).items()
        if name.isupper() and isinstance(value, str) and value.islower() and "_" in value
    }
    source = Path(__file__).read_text()
    untested = {kind for kind in kinds if f"maintenance.{_constant(kind)}" not in source}
    assert kinds and not untested, untested


def _constant(kind: str) -> str:
    return next(name for name, value in vars(maintenance).items() if value == kind and name.isupper())
