"""The use cases over the in-memory fakes: uploads, indexing runs, failures
and their retries, the re-drive, searching and deleting. Milliseconds each."""

import itertools
import json
from dataclasses import replace

import pytest

from chalicelib.core import indexing, library, searching
from chalicelib.core.errors import InvalidImage, ServiceUnavailable
from chalicelib.core.records import iso_before, now
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of


@pytest.fixture
def svc():
    return fake_services()


@pytest.fixture
def on_aws(svc):
    """The same services as the AWS wiring uses them: the upload's reply
    comes before indexing, which an S3 event runs."""
    return replace(svc, index_on_upload=False)


class Failing:
    """Wraps the engine: its index_faces raises `error` the next `times` times."""

    def __init__(self, engine, error: Exception, times: int) -> None:
        self._engine, self._error, self.left = engine, error, times

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def index_faces(self, *args):
        if self.left > 0:
            self.left -= 1
            raise self._error
        return self._engine.index_faces(*args)


def test_offline_an_upload_is_indexed_before_the_reply(svc):
    reply = indexing.upload_image(svc, "k.png", photo_of("ada"), {"name": "Ada"})
    assert reply["image"]["status"] == "indexed" and len(reply["faces"]) == 1
    assert searching.search_image(svc, photo_of("ada"), 80, 10)["matchedFaces"] == ["Ada"]


def test_on_aws_the_reply_is_pending_and_the_event_indexes_it(on_aws):
    reply = indexing.upload_image(on_aws, "k.png", photo_of("ada"), {})
    assert reply == {"image": reply["image"], "faces": []} and reply["image"]["status"] == "pending"
    assert reply["image"]["pendingSince"]
    image = indexing.index_photo(on_aws, "k.png", on_aws.photos.head("k.png").version)
    assert image["status"] == "indexed" and "pendingSince" not in image
    assert maintenance.check(on_aws) == []


def test_the_same_bytes_again_keep_their_faces_and_take_the_new_metadata(svc):
    first = indexing.upload_image(svc, "k.png", photo_of("ada"), {"name": "Ada"})
    again = indexing.upload_image(svc, "k.png", photo_of("ada"), {"name": "Ada Lovelace"})
    assert [f["FaceId"] for f in again["faces"]] == [f["FaceId"] for f in first["faces"]]
    assert svc.engine.calls.count("IndexFaces") == 1
    assert searching.search_image(svc, photo_of("ada"), 80, 10)["matchedFaces"] == ["Ada Lovelace"]


def test_the_same_bytes_again_with_other_metadata_move_updated_at_and_nothing_else(svc):
    ticks = itertools.count()
    svc = replace(svc, clock=lambda: iso_before("2026-01-01T00:00:00.000+00:00", -next(ticks)))
    first = indexing.upload_image(svc, "k.png", photo_of("ada"), {"name": "Ada"})["image"]
    again = indexing.upload_image(svc, "k.png", photo_of("ada"), {"name": "Ada Lovelace"})["image"]
    assert again["metadata"] == {"name": "Ada Lovelace"} and again["updatedAt"] > first["updatedAt"]
    assert again["imageId"] == first["imageId"] and svc.engine.calls.count("IndexFaces") == 1


def test_new_bytes_replace_the_faces_in_the_collection_and_the_records(svc):
    indexing.upload_image(svc, "k.png", photo_of("ada", "bob"), {})
    reply = indexing.upload_image(svc, "k.png", photo_of("cy"), {})
    assert len(reply["faces"]) == 1
    assert set(svc.engine.faces) == {reply["faces"][0]["FaceId"]}
    assert searching.search_image(svc, photo_of("ada"), 80, 10)["matches"] == []


def test_a_photo_the_engine_rejects_ends_failed_with_the_reason_and_no_faces(svc):
    indexing.upload_image(svc, "k.png", photo_of("ada"), {})
    svc = replace(svc, engine=Failing(svc.engine, InvalidImage("Rekognition cannot read it."), 1))
    reply = indexing.upload_image(svc, "k.png", photo_of("ada", shade=9), {})
    assert reply["image"]["status"] == "failed" and reply["image"]["error"] == "Rekognition cannot read it."
    assert reply["faces"] == [] and svc.engine.faces == {}
    assert maintenance.check(svc) == []


def test_offline_a_failure_that_may_pass_is_retried_once_before_the_reply(svc):
    svc = replace(svc, engine=Failing(svc.engine, ServiceUnavailable("busy"), 1))
    reply = indexing.upload_image(svc, "k.png", photo_of("ada"), {})
    assert reply["image"]["status"] == "indexed" and "error" not in reply["image"]


def test_offline_failing_twice_ends_failed_with_the_reason(svc):
    svc = replace(svc, engine=Failing(svc.engine, ServiceUnavailable("The service is busy."), 2))
    reply = indexing.upload_image(svc, "k.png", photo_of("ada"), {})
    assert reply["image"]["status"] == "failed"
    assert reply["image"]["error"] == "Indexing failed 2 times; the last time: The service is busy."


def test_on_aws_each_failed_run_is_recorded_and_raised_until_the_last_ends_failed(on_aws):
    indexing.upload_image(on_aws, "k.png", photo_of("ada"), {})
    version = on_aws.photos.head("k.png").version
    failing = replace(on_aws, engine=Failing(on_aws.engine, RuntimeError("socket closed"), indexing.INDEX_ATTEMPTS))
    for attempt in range(1, indexing.INDEX_ATTEMPTS):
        with pytest.raises(RuntimeError):
            indexing.index_photo(failing, "k.png", version)
        image = on_aws.records.get_image("k.png")
        assert (image["status"], image["attempts"]) == ("pending", attempt)
        assert image["error"] == "unexpected RuntimeError (see the log)"
    image = indexing.index_photo(failing, "k.png", version)
    assert image["status"] == "failed" and image["attempts"] == indexing.INDEX_ATTEMPTS


def test_every_indexing_failure_is_logged_without_the_key_and_recorded_with_the_reason(on_aws, capsys, caplog):
    indexing.upload_image(on_aws, "keanu-at-home.png", photo_of("ada"), {})
    failing = replace(on_aws, engine=Failing(on_aws.engine, ServiceUnavailable("The photo 'keanu-at-home.png'."), 1))
    with pytest.raises(ServiceUnavailable):
        indexing.index_photo(failing, "keanu-at-home.png")
    err = capsys.readouterr().err
    (line,) = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert (line["outcome"], line["failed"]) == ("retry", True) and "key" not in line
    assert "keanu" not in err + caplog.text
    assert on_aws.records.get_image("keanu-at-home.png")["error"] == "The photo 'keanu-at-home.png'."


def test_a_new_version_resets_the_attempts(on_aws):
    indexing.upload_image(on_aws, "k.png", photo_of("ada"), {})
    failing = replace(on_aws, engine=Failing(on_aws.engine, RuntimeError("x"), 1))
    with pytest.raises(RuntimeError):
        indexing.index_photo(failing, "k.png")
    indexing.upload_image(on_aws, "k.png", photo_of("bob"), {})
    image = indexing.index_photo(on_aws, "k.png")
    assert image["status"] == "indexed" and "attempts" not in image and "error" not in image


def test_the_redrive_indexes_photos_pending_for_minutes_and_leaves_fresh_ones(on_aws):
    indexing.upload_image(on_aws, "lost.png", photo_of("ada"), {})  # its event never came
    later = iso_before(now(), -indexing.REDRIVE_AFTER_SECONDS - 1)
    indexing.upload_image(on_aws, "fresh.png", photo_of("bob"), {})
    assert indexing.redrive_pending(on_aws, moment=now())["pending"] == 0
    assert indexing.redrive_pending(on_aws, moment=later) == {"pending": 2, "indexed": 2, "failed": 0, "removed": 0}
    assert {i["status"] for i in library.list_images(on_aws, 10, None)["images"]} == {"indexed"}


def test_one_photo_failing_in_the_redrive_does_not_stop_the_others(on_aws):
    indexing.upload_image(on_aws, "a.png", photo_of("ada"), {})
    indexing.upload_image(on_aws, "b.png", photo_of("bob"), {})
    failing = replace(on_aws, engine=Failing(on_aws.engine, RuntimeError("x"), 1))
    later = iso_before(now(), -indexing.REDRIVE_AFTER_SECONDS - 1)
    assert indexing.redrive_pending(failing, moment=later) == {"pending": 2, "indexed": 1, "failed": 1, "removed": 0}
    statuses = sorted(i["status"] for i in library.list_images(on_aws, 10, None)["images"])
    assert statuses == ["indexed", "pending"]


def test_a_collection_face_without_a_record_never_hides_the_best_match(svc):
    indexing.upload_image(svc, "real.png", photo_of("ada"), {})
    for _ in range(3):  # faces a crash left in the collection, no record names them
        svc.engine.index_faces(svc.photos.head("real.png").version, "real.png")
    found = searching.search_image(svc, photo_of("ada"), 80, 1)
    assert [m["imageKey"] for m in found["matches"]] == ["real.png"]


def test_deleting_an_image_removes_photo_faces_and_records(svc):
    indexing.upload_image(svc, "k.png", photo_of("ada", "bob"), {})
    assert library.delete_image(svc, "k.png") == {"deleted": {"key": "k.png", "faces": 2}}
    assert svc.photos.head("k.png") is None and svc.engine.faces == {} and svc.records.images == {}
