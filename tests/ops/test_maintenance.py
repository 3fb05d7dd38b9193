"""Check, repair and reindex: every kind of drift is broken on purpose
(faults injected into the adapters, or a store damaged behind our back),
and check + repair, or a plain retry, converge with nothing lost."""

import pytest

from chalicelib import wiring
from chalicelib.core import indexing, library
from chalicelib.core.config import Settings
from chalicelib.core.services import Services
from chalicelib.embedded.photos import FilePhotoStore
from chalicelib.ops import maintenance
from tests.support import imagegen
from tests.support.photos import people, photo

NAMES = ["Keanu-Avril-Mike.jpg", "Jim-Carrey.jpg", "Lawrence2.jpg", "no-face.jpg"]


class Faulty:
    """Wraps an adapter; its `method` raises on the first `times` calls."""

    def __init__(self, target, method: str, times: int = 1) -> None:
        self._target, self._method, self._left = target, method, times

    def __getattr__(self, name):
        attr = getattr(self._target, name)
        if name != self._method:
            return attr

        def failing(*args, **kwargs):
            if self._left > 0:
                self._left -= 1
                raise RuntimeError(f"injected failure in {name}")
            return attr(*args, **kwargs)

        return failing


def with_fault(svc, port: str, method: str) -> Services:
    return Services(**{**svc.__dict__, port: Faulty(getattr(svc, port), method)})


@pytest.fixture
def svc(tmp_path):
    services = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "data")}))
    for name in NAMES:
        indexing.upload_image(services, name, photo(name), {})
    return services


def faces_by_image(svc) -> dict[str, list]:
    return {name: sorted(round(f["BoundingBox"]["Left"], 3) for f in svc.records.faces_of(name)) for name in NAMES}


def assert_consistent(svc) -> None:
    assert maintenance.check(svc) == []
    assert {n: len(v) for n, v in faces_by_image(svc).items()} == {n: len(people()[n]) for n in NAMES}
    assert svc.engine.describe()["faces"] == sum(len(people()[n]) for n in NAMES)


def repair(svc) -> list[str]:
    found = maintenance.check(svc)
    maintenance.repair(svc, found)
    return sorted({d.kind for d in found})


def test_a_fresh_archive_is_consistent(svc):
    assert_consistent(svc)


def test_reindex_twice_gives_the_same_faces_not_twice_as_many(svc, tmp_path):
    before = faces_by_image(svc)
    assert maintenance.reindex(svc, tmp_path / "progress.json") == len(NAMES)
    assert maintenance.reindex(svc, tmp_path / "progress.json") == len(NAMES)
    assert faces_by_image(svc) == before
    assert_consistent(svc)


def test_an_interrupted_reindex_carries_on_where_it_stopped(svc, tmp_path):
    progress = tmp_path / "progress.json"
    seen = []

    def interrupt_after_two(done, total, key):
        seen.append(key)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        maintenance.reindex(svc, progress, on_photo=interrupt_after_two)
    assert progress.exists()
    rest = []
    maintenance.reindex(svc, progress, on_photo=lambda done, total, key: rest.append((done, total, key)))
    assert [done for done, _, _ in rest] == [3, 4] and rest[-1][1] == 4
    assert sorted(seen + [key for _, _, key in rest]) == sorted(NAMES)
    assert not progress.exists()
    assert_consistent(svc)


def test_reindex_rebuilds_a_lost_collection(svc, tmp_path):
    svc.engine._db.write("DELETE FROM collection")
    assert repair.__name__  # the check below reports before reindex repairs
    assert {d.kind for d in maintenance.check(svc)} == {maintenance.RECORD_WITHOUT_FACE}
    maintenance.reindex(svc, tmp_path / "progress.json")
    assert_consistent(svc)


def test_a_lost_collection_is_repaired(svc):
    svc.engine._db.write("DELETE FROM collection")
    assert repair(svc) == [maintenance.RECORD_WITHOUT_FACE]
    assert_consistent(svc)


def test_lost_face_records_are_repaired_by_indexing_again_not_by_dropping_faces(svc):
    svc.records._db.write("DELETE FROM faces WHERE image_key = 'Keanu-Avril-Mike.jpg'")
    assert repair(svc) == [maintenance.FACE_WITHOUT_RECORD, maintenance.PHOTO_NOT_INDEXED]
    assert_consistent(svc)


def test_a_lost_photo_takes_its_records_and_faces_with_it(svc, tmp_path):
    svc.photos._path("Jim-Carrey.jpg").unlink()
    assert repair(svc) == [maintenance.RECORD_WITHOUT_PHOTO]
    assert maintenance.check(svc) == []
    assert svc.records.get_image("Jim-Carrey.jpg") is None
    assert svc.engine.describe()["faces"] == sum(len(people()[n]) for n in NAMES if n != "Jim-Carrey.jpg")


def test_a_failure_between_the_engine_and_the_records_is_repaired(svc, tmp_path):
    # A photo lands in the store; indexing it fails after the engine call.
    FilePhotoStore(tmp_path / "data" / "photos").put("Mike-Meyers.jpg", photo("Mike-Meyers.jpg"), "image/jpeg", {})
    with pytest.raises(RuntimeError):
        indexing.index_photo(with_fault(svc, "records", "commit_faces"), "Mike-Meyers.jpg")
    # The run took its faces back and recorded the failure: the photo waits for another attempt.
    assert repair(svc) == [maintenance.PHOTO_PENDING]
    assert maintenance.check(svc) == []
    assert len(svc.records.faces_of("Mike-Meyers.jpg")) == 1


@pytest.mark.parametrize("port, method", [("engine", "delete_faces"), ("records", "remove_image")])
def test_a_crash_mid_delete_is_finished_by_a_retry(svc, port, method):
    faulty = with_fault(svc, port, method)
    with pytest.raises(RuntimeError):
        library.delete_image(faulty, "Keanu-Avril-Mike.jpg")
    library.delete_image(faulty, "Keanu-Avril-Mike.jpg")  # the same request again
    assert maintenance.check(svc) == []
    assert svc.records.get_image("Keanu-Avril-Mike.jpg") is None
    assert svc.engine.describe()["faces"] == 2


@pytest.mark.parametrize(
    "port, method, found",
    [
        ("engine", "delete_faces", [maintenance.RECORD_WITHOUT_PHOTO]),
        # The collection has lost the faces already: the records say so too.
        ("records", "remove_image", [maintenance.RECORD_WITHOUT_FACE, maintenance.RECORD_WITHOUT_PHOTO]),
    ],
)
def test_a_crash_mid_delete_is_finished_by_repair_without_resurrecting_the_photo(svc, port, method, found):
    with pytest.raises(RuntimeError):
        library.delete_image(with_fault(svc, port, method), "Keanu-Avril-Mike.jpg")
    assert repair(svc) == found
    assert maintenance.check(svc) == []
    assert svc.records.get_image("Keanu-Avril-Mike.jpg") is None
    assert svc.engine.describe()["faces"] == 2


def test_a_crash_mid_face_delete_is_finished_by_a_retry(svc):
    face_id = svc.records.faces_of("Jim-Carrey.jpg")[0]["FaceId"]
    faulty = with_fault(svc, "records", "delete_face")
    with pytest.raises(RuntimeError):
        library.delete_face(faulty, face_id)
    library.delete_face(faulty, face_id)
    assert svc.records.get_face(face_id) is None
    assert face_id not in {f["FaceId"] for f in svc.engine.list_faces(100).items}
    # The image keeps its record with no faces: a deliberate state, not drift.
    assert svc.records.get_image("Jim-Carrey.jpg")["faceCount"] == 0
    assert maintenance.check(svc) == []


@pytest.fixture
def aws_svc(monkeypatch):
    """The same archive on the AWS wiring (moto + the Rekognition fake)."""
    from tests.support.fake_rekognition import aws_stage

    with aws_stage(monkeypatch, "dev") as resources:
        services = wiring.services(Settings.from_env(resources.env))
        resources.events.held = True  # the events are ours to send
        for name in NAMES:
            indexing.upload_image(services, name, photo(name), {})
        resources.events.deliver()
        yield services, resources


def test_on_aws_check_repair_and_reindex_converge(aws_svc, tmp_path):
    svc, resources = aws_svc
    assert_consistent(svc)
    before = faces_by_image(svc)
    maintenance.reindex(svc, tmp_path / "progress.json")
    maintenance.reindex(svc, tmp_path / "progress.json")
    assert faces_by_image(svc) == before
    assert_consistent(svc)
    # Lose the collection's faces of one photo, and a photo of another.
    lost = [f["FaceId"] for f in svc.records.faces_of("Keanu-Avril-Mike.jpg")]
    resources.rekognition.delete_faces(CollectionId=svc.settings.collection, FaceIds=lost)
    resources.s3.delete_object(Bucket=resources.bucket, Key="Jim-Carrey.jpg")
    assert repair(svc) == [maintenance.RECORD_WITHOUT_FACE, maintenance.RECORD_WITHOUT_PHOTO]
    assert maintenance.check(svc) == []
    assert svc.records.get_image("Jim-Carrey.jpg") is None
    assert len(svc.records.faces_of("Keanu-Avril-Mike.jpg")) == 3


def test_reindex_moves_an_offline_archive_to_the_aws_wiring(svc, aws_svc, tmp_path):
    target, resources = aws_svc
    for name in NAMES:  # start the AWS archive empty
        library.delete_image(target, name)
    assert maintenance.reindex(target, tmp_path / "move.json", source=svc) == len(NAMES)
    assert faces_by_image(target) == faces_by_image(svc)
    assert maintenance.check(target) == []
    assert sorted(o["Key"] for o in resources.s3.list_objects_v2(Bucket=resources.bucket)["Contents"]) == sorted(NAMES)


def test_check_reports_a_photo_left_pending_and_repair_indexes_it(svc):
    stored = svc.photos.put("late.jpg", photo("Mike-Meyers.jpg"), "image/jpeg", {})
    indexing._record_pending(svc, stored)  # as an upload whose indexing never ran
    assert repair(svc) == [maintenance.PHOTO_PENDING]
    assert svc.records.get_image("late.jpg")["status"] == "indexed"
    assert maintenance.check(svc) == []


def test_reindex_from_another_stage_keeps_metadata_and_types_both_ways(svc, aws_svc, tmp_path):
    """Offline to AWS and back: each photo arrives with its metadata, its
    content type and the type it was uploaded as."""
    target, _ = aws_svc
    for name in NAMES:
        library.delete_image(target, name)
    heic = imagegen.phone_photo("Keanu-Avril-Mike.jpg", "image/heic")
    indexing.upload_image(svc, "phone.jpg", heic, {"name": "The three"})
    maintenance.reindex(target, tmp_path / "there.json", source=svc)
    back = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "back")}))
    maintenance.reindex(back, tmp_path / "back.json", source=target)
    for stage in (target, back):
        image = stage.records.get_image("phone.jpg")
        assert image["metadata"] == {"name": "The three"}
        assert (image["contentType"], image["originalContentType"]) == ("image/jpeg", "image/heic")
        assert image["faceCount"] == 3
        assert stage.photos.head("Jim-Carrey.jpg").content_type == "image/jpeg"
        assert maintenance.check(stage) == []
