"""People under concurrency and maintenance, on three wirings: the
in-memory fakes, the embedded stage and the AWS wiring. A search that
found a person before they were deleted never names them in its reply:
POST /search/people leaves them out, POST /search labels their faces as
any other face. A reindex gives a photo new FaceIds: its faces' people
carry over."""

import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.core import indexing, library, people, searching
from chalicelib.core.config import Settings
from chalicelib.core.services import Services
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of
from tests.support.interleave import Steps
from tests.support.photos import photo

KEY = "keanu.jpg"


@pytest.fixture(
    params=["fake", pytest.param("local", marks=pytest.mark.slow), pytest.param("dev", marks=pytest.mark.slow)]
)
def enrolled(request, tmp_path, monkeypatch) -> Iterator[tuple[Services, bytes]]:
    """Services with one photo indexed and its face given to person `keanu`,
    and a photo of him to search with."""
    if request.param == "fake":
        yield _enrol(fake_services(), photo_of("keanu")), photo_of("keanu")
    elif request.param == "local":
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "data")}))
        yield _enrol(svc, photo("Keanu-Reeves.jpg")), photo("Keanu-Reeves.jpg")
    else:
        from tests.support.fake_rekognition import aws_stage

        with aws_stage(monkeypatch, "dev") as resources:
            svc = replace(wiring.services(Settings.from_env(resources.env)), index_on_upload=True)
            yield _enrol(svc, photo("Keanu-Reeves.jpg")), photo("Keanu-Reeves.jpg")


def _enrol(svc: Services, data: bytes) -> Services:
    indexing.upload_image(svc, KEY, data, {"person": "keanu"})
    assert svc.records.get_image(KEY)["enrolment"]["status"] == "associated"
    people.put_person(svc, "keanu", "Keanu Reeves")  # the photo itself is labelled "Keanu"
    return svc


def test_search_people_leaves_out_a_person_deleted_while_it_ran(enrolled):
    svc, query = enrolled
    assert [p["personId"] for p in people.search_people(svc, query, 80.0, 10)["people"]] == ["keanu"]
    steps = Steps()
    paused = steps.wrap(svc)
    steps.pause("search", "search_users_by_image")
    running = steps.start("search", people.search_people, paused, query, 80.0, 10)
    steps.reached("search", "search_users_by_image")
    people.delete_person(svc, "keanu")
    steps.release("search")
    reply = running.result()
    assert reply["people"] == [] and reply["UserMatches"] == []


def test_search_labels_a_face_by_its_photo_once_its_person_is_deleted_meanwhile(enrolled):
    svc, query = enrolled
    assert searching.search_image(svc, query, 80.0, 10)["matchedFaces"] == ["Keanu Reeves"]
    steps = Steps()
    paused = steps.wrap(svc)
    steps.pause("search", "search_faces_by_image")
    running = steps.start("search", searching.search_image, paused, query, 80.0, 10)
    steps.reached("search", "search_faces_by_image")
    people.delete_person(svc, "keanu")
    steps.release("search")
    reply = running.result()
    assert reply["matchedFaces"] == ["Keanu"]
    assert "personId" not in reply["matches"][0]
    assert "UserId" not in reply["faces"]["FaceMatches"][0]["Face"]


def test_a_face_deleted_while_it_is_given_to_a_person_is_not_counted(enrolled):
    svc, _ = enrolled
    people.put_person(svc, "other", "Other")
    face_id = svc.records.faces_of(KEY)[0]["FaceId"]
    people.disassociate_face(svc, "keanu", face_id)
    steps = Steps()
    paused = steps.wrap(svc)
    steps.pause("give", "associate_faces")  # the engine's, then the records' follow
    running = steps.start("give", people.associate_faces, paused, "other", [face_id], 75.0)
    steps.reached("give", "associate_faces")
    library.delete_image(svc, KEY)
    steps.release("give")
    reply = running.result()
    assert reply["associatedFaces"] == []
    assert reply["unsuccessfulFaceAssociations"] == [{"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]}]
    assert svc.records.get_person("other")["faceCount"] == 0


def test_a_reindex_keeps_the_people_of_the_photos_faces(enrolled):
    svc, query = enrolled
    before = svc.records.faces_of(KEY)[0]["FaceId"]
    maintenance.reindex(svc, Path(tempfile.mkdtemp()) / "progress.json")
    (after,) = svc.records.faces_of(KEY)
    assert after["FaceId"] != before and after["UserId"] == "keanu"
    assert [f["FaceId"] for f in svc.records.faces_of_person("keanu")] == [after["FaceId"]]
    assert [p["personId"] for p in people.search_people(svc, query, 80.0, 10)["people"]] == ["keanu"]
    assert maintenance.check(svc) == []
