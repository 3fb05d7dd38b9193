"""Deleted faces stay deleted (core/exclusions.py): whatever indexes the
photo again (a reindex, a repair, a run that was under way when the face
was deleted) leaves the removed face out, over the in-memory fakes."""

from dataclasses import replace

import pytest

from chalicelib.core import indexing, library, searching
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of


@pytest.fixture
def svc():
    return fake_services()


def group(svc, key: str = "group.png") -> dict[str, str]:
    """A photo of ada and bob, indexed: each one's FaceId."""
    indexing.upload_image(svc, key, photo_of("ada", "bob"), {})
    found = {svc.engine.faces[f["FaceId"]]["_person"]: f["FaceId"] for f in svc.records.faces_of(key)}
    assert set(found) == {"ada", "bob"}
    return found


def people_indexed(svc, key: str = "group.png") -> list[str]:
    return sorted(svc.engine.faces[f["FaceId"]]["_person"] for f in svc.records.faces_of(key))


def test_a_deleted_face_stays_deleted_through_a_reindex(svc, tmp_path):
    library.delete_face(svc, group(svc)["bob"])
    assert people_indexed(svc) == ["ada"]
    maintenance.reindex(svc, tmp_path / "progress.json")
    assert people_indexed(svc) == ["ada"]
    assert searching.search_image(svc, photo_of("bob"), 80, 10)["matches"] == []
    assert {face["_person"] for face in svc.engine.faces.values()} == {"ada"}  # none left in the collection
    image = svc.records.get_image("group.png")
    assert image["faceCount"] == 1 and image["status"] == "indexed"
    assert maintenance.check(svc) == []


def test_a_deleted_face_stays_deleted_through_a_repair(svc):
    faces = group(svc)
    library.delete_face(svc, faces["bob"])
    svc.engine.delete_faces([faces["ada"]])  # the collection lost ada's face: repair indexes the photo again
    found = maintenance.check(svc)
    assert [d.kind for d in found] == [maintenance.RECORD_WITHOUT_FACE]
    maintenance.repair(svc, found)
    assert people_indexed(svc) == ["ada"] and maintenance.check(svc) == []


def test_every_face_deleted_leaves_the_photo_without_faces_after_a_reindex(svc, tmp_path):
    for face_id in group(svc).values():
        library.delete_face(svc, face_id)
    maintenance.reindex(svc, tmp_path / "progress.json")
    image = svc.records.get_image("group.png")
    assert (image["status"], image["faceCount"], svc.engine.faces) == ("no_faces", 0, {})


def test_the_same_bytes_uploaded_again_keep_the_face_out(svc):
    library.delete_face(svc, group(svc)["bob"])
    indexing.upload_image(svc, "group.png", photo_of("ada", "bob"), {"name": "Again"})
    indexing.index_photo(svc, "group.png", force=True)
    assert people_indexed(svc) == ["ada"]


def test_other_bytes_under_the_same_key_are_another_photo(svc):
    library.delete_face(svc, group(svc)["bob"])
    indexing.upload_image(svc, "group.png", photo_of("ada", "bob", shade=9), {})
    assert people_indexed(svc) == ["ada", "bob"]


def test_a_face_deleted_while_a_run_indexes_its_photo_is_not_committed(svc):
    """The run read the record before the exclusion; its commit loses the
    compare-and-set, reads again, and leaves the face out."""
    faces = group(svc)
    on_aws = replace(svc, index_on_upload=False)
    real_index = svc.engine.index_faces

    def index_then_delete(photo, external_image_id):
        result = real_index(photo, external_image_id)
        library.delete_face(svc, faces["bob"])  # a DELETE /faces/{id} while the run is between IndexFaces and commit
        return result

    svc.engine.index_faces = index_then_delete
    indexing.index_photo(on_aws, "group.png", force=True)
    del svc.engine.index_faces
    assert people_indexed(svc) == ["ada"]
    assert {face["_person"] for face in svc.engine.faces.values()} == {"ada"}
