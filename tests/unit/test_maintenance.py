"""check, repair and reindex over the in-memory fakes: at a million faces they
must read the id-only listings, never every record; synthetic images
(make seed) have no photo and are still consistent; one that lost a face is
removed, not indexed again. Milliseconds each; the real stacks are in
tests/ops/test_maintenance.py and tests/ops/test_seeding.py."""

from dataclasses import replace

import pytest

from chalicelib.core import indexing, synthetic
from chalicelib.core.errors import Throttled
from chalicelib.core.pacing import InMemoryState, Pacing
from chalicelib.core.records import now
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of


class IdsOnly:
    """Wraps a store or engine: the listings of whole records fail, as they
    would run out of memory at a million faces."""

    def __init__(self, target) -> None:
        self._target = target

    def __getattr__(self, name):
        if name in ("list_images", "list_faces"):
            raise AssertionError(f"{name} read every record")
        return getattr(self._target, name)


@pytest.fixture
def svc():
    services = fake_services()
    for number, people in enumerate([("alice",), ("bob", "carol"), ()]):
        indexing.upload_image(services, f"photo-{number}.png", photo_of(*people), {})
    return services


def ids_only(svc):
    return replace(svc, records=IdsOnly(svc.records), engine=IdsOnly(svc.engine))


def add_synthetic(svc, number: int) -> dict:
    """A synthetic image as make seed records it: no photo, one face."""
    key = synthetic.key("0badcafe", number)
    face = {
        "FaceId": f"0badcafe-5eed-4000-8000-{number:012x}",
        "BoundingBox": {"Width": 0.3, "Height": 0.4, "Left": 0.3, "Top": 0.2},
        "ImageId": f"0badcafe-5eed-4000-9000-{number:012x}",
        "ExternalImageId": synthetic.external_image_id(key),
        "Confidence": 99.9,
    }
    image = {
        "key": key,
        "status": "indexed",
        "metadata": {**synthetic.METADATA, "name": f"Synthetic person {number}"},
        "size": 0,
        "etag": synthetic.ETAG,
        "faceCount": 1,
        "updatedAt": now(),
    }
    assert svc.records.commit_faces(image, [{**face, "imageKey": key}], None).replaced == []
    svc.engine.faces[face["FaceId"]] = {**face, "_person": f"synthetic-{number}"}
    return {**face, "imageKey": key}


def kinds(found) -> list[str]:
    return sorted({d.kind for d in found})


def repair(svc) -> list[str]:
    found = maintenance.check(svc)
    maintenance.repair(svc, found)
    return kinds(found)


def test_check_reads_ids_and_keys_never_whole_records(svc, monkeypatch):
    monkeypatch.setattr(maintenance, "ID_PAGE", 2)  # several pages of everything
    monkeypatch.setattr(maintenance, "PAGE", 2)
    for number in range(1, 6):
        add_synthetic(svc, number)
    assert maintenance.check(ids_only(svc)) == []
    del svc.engine.faces[svc.records.faces_of("photo-1.png")[0]["FaceId"]]
    svc.photos.delete("photo-0.png")
    assert kinds(maintenance.check(ids_only(svc))) == [
        maintenance.RECORD_WITHOUT_FACE,
        maintenance.RECORD_WITHOUT_PHOTO,
    ]


def test_every_kind_of_drift_is_found_through_the_id_listings(svc):
    lost_record = svc.records.faces_of("photo-1.png")[0]["FaceId"]
    svc.records.faces.pop(lost_record)  # a collection face no record names, and a count off
    orphan = {"FaceId": "orphan", "imageKey": "gone.png", "ImageId": "i", "ExternalImageId": "gone.png"}
    svc.records.faces["orphan"] = orphan  # a face record whose image record is gone
    svc.engine.faces["orphan"] = {**orphan, "_person": "dave"}
    svc.photos.put("never-indexed.png", photo_of("erin"), "image/png", {})
    found = maintenance.check(ids_only(svc))
    assert {(d.kind, d.key, d.face_id) for d in found} == {
        (maintenance.FACE_WITHOUT_RECORD, None, lost_record),
        (maintenance.PHOTO_NOT_INDEXED, "photo-1.png", None),
        (maintenance.FACE_WITHOUT_IMAGE, "gone.png", "orphan"),
        (maintenance.PHOTO_NOT_INDEXED, "never-indexed.png", None),
    }
    maintenance.repair(svc, found)
    assert maintenance.check(svc) == []
    assert len(svc.records.faces_of("photo-1.png")) == 2


def test_synthetic_images_have_no_photo_and_are_consistent(svc):
    add_synthetic(svc, 1)
    assert maintenance.check(svc) == []


@pytest.mark.parametrize("key, etag", [("synthetic/not-seeded.png", "0" * 32), ("album/x.png", synthetic.ETAG)])
def test_a_record_that_only_looks_synthetic_still_needs_its_photo(svc, key, etag):
    image = {"key": key, "status": "indexed", "metadata": {}, "etag": etag, "faceCount": 0, "updatedAt": now()}
    svc.records.put_image(image, None)
    assert kinds(maintenance.check(svc)) == [maintenance.RECORD_WITHOUT_PHOTO]


def test_a_synthetic_image_that_lost_its_collection_face_is_removed_not_indexed(svc):
    face = add_synthetic(svc, 1)
    del svc.engine.faces[face["FaceId"]]
    calls = len(svc.engine.calls)
    assert repair(svc) == [maintenance.RECORD_WITHOUT_FACE]
    assert svc.records.get_image(face["imageKey"]) is None
    assert len(svc.engine.calls) == calls  # nothing was indexed
    assert maintenance.check(svc) == []


def test_a_synthetic_image_that_lost_its_face_record_is_removed(svc):
    face = add_synthetic(svc, 1)
    del svc.records.faces[face["FaceId"]]
    assert repair(svc) == [maintenance.FACE_WITHOUT_RECORD, maintenance.SYNTHETIC_INCOMPLETE]
    assert svc.records.get_image(face["imageKey"]) is None
    assert face["FaceId"] not in svc.engine.faces
    assert maintenance.check(svc) == []


def test_a_photo_uploaded_at_a_synthetic_key_is_a_photo_like_any_other(svc):
    face = add_synthetic(svc, 1)
    reply = indexing.upload_image(svc, face["imageKey"], photo_of("frank"), {})
    assert reply["image"]["status"] == "indexed" and reply["image"]["etag"] != synthetic.ETAG
    assert face["FaceId"] not in svc.engine.faces  # the synthetic face went with the version it replaced
    assert maintenance.check(svc) == []


def test_reindex_drops_stray_faces_through_the_id_listings_and_keeps_synthetic_ones(svc, tmp_path, monkeypatch):
    monkeypatch.setattr(maintenance, "ID_PAGE", 2)
    face = add_synthetic(svc, 1)
    svc.engine.faces["stray"] = {"FaceId": "stray", "_person": "gina"}
    assert maintenance.reindex(ids_only(svc), tmp_path / "progress.json") == 3
    assert "stray" not in svc.engine.faces
    assert face["FaceId"] in svc.engine.faces
    assert maintenance.check(svc) == []


# The scheduled check (issue 25 items 3 and 6; issue 26 item 5).


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def staged(svc, clock: Clock):
    """The services with the stage's shared state (where the scheduled check keeps its place)."""
    return replace(svc, pacing=Pacing(InMemoryState(), 5, 5, 5, clock=lambda: clock.now, sleep=clock.sleep))


class Slow:
    """Wraps a store: each listing's page takes `seconds` on the clock."""

    def __init__(self, target, clock: Clock, seconds: float) -> None:
        self._target, self._clock, self._seconds = target, clock, seconds

    def __getattr__(self, name):
        found = getattr(self._target, name)
        if not name.startswith("list"):
            return found

        def listing(*args, **kwargs):
            self._clock.now += self._seconds
            return found(*args, **kwargs)

        return listing


def test_the_scheduled_check_works_in_segments_and_carries_on_where_it_stopped(svc, monkeypatch):
    """A page at a time; each run stops when its time is spent and the
    next carries on; a round covers every pass, and the next round begins."""
    monkeypatch.setattr(maintenance, "ID_PAGE", 1)
    clock = Clock()
    for number in range(3, 9):
        indexing.upload_image(svc, f"photo-{number}.png", photo_of(f"p{number}"), {})
    svc.photos.delete("photo-4.png")  # its ObjectRemoved event lost
    stray = {"FaceId": "stray", "ExternalImageId": "photo-5.png", "_person": "x"}
    svc.engine.faces["stray"] = stray  # a run stopped between IndexFaces and its commit
    stage = staged(replace(svc, engine=Slow(svc.engine, clock, 1), records=Slow(svc.records, clock, 1)), clock)
    runs = []
    while not (runs and runs[-1]["roundsDone"]):
        runs.append(maintenance.sweep_for(stage, seconds=5, threads=4))
    assert len(runs) > 3 and sum(run["found"] for run in runs) == 2
    found = {}
    for run in runs:
        for kind, n in run["byKind"].items():
            found[kind] = found.get(kind, 0) + n
    assert found == {maintenance.FACE_WITHOUT_RECORD: 1, maintenance.RECORD_WITHOUT_PHOTO: 1}
    assert "stray" not in svc.engine.faces and svc.records.get_image("photo-4.png") is None
    assert runs[-1]["round"] == 2 and stage.pacing.state.read(maintenance.CHECK)["step"] == 0
    assert maintenance.check(svc) == []
    assert maintenance.sweep_for(stage, seconds=5)["pass"] == "waiting"  # a round a day at most
    clock.now += maintenance.CHECK_ROUND_HOURS * 3600
    assert maintenance.sweep_for(stage, seconds=5)["pages"] > 0


def test_the_scheduled_check_leaves_pending_photos_to_the_queue_and_one_failure_stops_nothing():
    """A backlog waits in the queue: the check does not index it on top of
    the workers; a photo whose repair fails (throttled, or any error) is
    left to the next check, and the rest is repaired."""
    clock = Clock()
    stage = staged(replace(fake_services(index_on_upload=False), queue=object()), clock)
    for number in range(3):
        indexing.upload_image(stage, f"waiting-{number}.png", photo_of(f"w{number}"), {})
    gone = indexing.upload_image(replace(stage, index_on_upload=True), "gone.png", photo_of("g"), {})["image"]
    stage.photos.delete("gone.png")
    for number in range(2):
        stage.photos.put(f"by-hand-{number}.png", photo_of(f"h{number}"), "image/png", {})  # their events lost
    throttled = Throttling(stage.engine, {"by-hand-0.png"})
    done = maintenance.sweep_for(replace(stage, engine=throttled), seconds=60, threads=1)
    assert done["byKind"] == {
        maintenance.PHOTO_PENDING: 3,
        maintenance.RECORD_WITHOUT_PHOTO: 1,
        maintenance.PHOTO_NOT_INDEXED: 2,
    }
    assert [stage.records.get_image(f"waiting-{n}.png")["status"] for n in range(3)] == ["pending"] * 3
    assert stage.records.get_image("gone.png") is None and gone["faceCount"] == 1
    throttled_one = stage.records.get_image("by-hand-0.png")  # recorded pending, uncounted: the re-drive's now
    assert throttled_one["status"] == "pending" and "attempts" not in throttled_one
    assert stage.records.get_image("by-hand-1.png") is None  # after a throttle, no more indexing this run
    assert done["left"] == 2 and throttled.calls == 1


def test_a_photo_indexed_while_the_check_read_is_not_indexed_again(svc):
    """check saw its faces missing (the collection read before the commit);
    by the repair, it is as recorded: its FaceIds stay."""
    before = [face["FaceId"] for face in svc.records.faces_of("photo-1.png")]
    found = [maintenance.Disagreement(maintenance.RECORD_WITHOUT_FACE, "photo-1.png", before[0])]
    calls = len(svc.engine.calls)
    assert maintenance.repair(svc, found)["repaired"] == 1
    assert [face["FaceId"] for face in svc.records.faces_of("photo-1.png")] == before
    assert len(svc.engine.calls) == calls  # no IndexFaces paid twice


def test_a_repair_that_fails_leaves_the_others_done(svc):
    svc.photos.delete("photo-0.png")
    svc.photos.put("never.png", photo_of("x"), "image/png", {})
    failing = replace(svc, records=FailingRemove(svc.records))
    done = maintenance.repair(failing, maintenance.check(svc))
    assert done == {"repaired": 1, "failed": 1, "left": 0}
    assert svc.records.get_image("never.png")["status"] == "indexed"


class Throttling:
    """Wraps the engine: index_faces of `keys` is throttled."""

    def __init__(self, engine, keys: set[str]) -> None:
        self._engine, self._keys, self.calls = engine, keys, 0

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def index_faces(self, photo, external_image_id):
        self.calls += 1
        if photo.key in self._keys:
            raise Throttled("The service is busy")
        return self._engine.index_faces(photo, external_image_id)


class FailingRemove:
    def __init__(self, records) -> None:
        self._records = records

    def __getattr__(self, name):
        return getattr(self._records, name)

    def remove_image(self, key, expected_revision=None):
        raise RuntimeError("socket closed")
