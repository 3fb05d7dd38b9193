"""People's use cases over the in-memory fakes, and the grouping of
suggested people. Milliseconds each."""

from dataclasses import replace

import pytest

from chalicelib.core import clustering, indexing, limits, people
from chalicelib.core.errors import BadRequest, NotFound
from chalicelib.ops.memory import fake_services, photo_of


@pytest.fixture
def svc():
    return fake_services()


def _face(svc, key: str) -> str:
    return svc.records.faces_of(key)[0]["FaceId"]


def test_a_chain_of_lookalikes_is_split_so_no_group_holds_two_faces_the_threshold_tells_apart():
    # a~b~c~d, each like the next (DBSCAN chains them), a and d unlike.
    graph = {"a": {"b": 95, "c": 85}, "b": {"c": 90}, "c": {"d": 92}, "d": {}}
    groups = clustering.suggest_groups(list("abcd"), graph, 2)
    for group in groups:
        assert all(other in clustering.symmetric(graph)[face] for face in group for other in group if other != face)
    assert groups == [["a", "b", "c"]] or groups == [["a", "b"], ["c", "d"]]


def test_lonely_faces_make_no_suggestion_and_min_faces_is_the_density():
    graph = {"a": {"b": 90}, "b": {"c": 90, "a": 90}, "c": {"a": 88}, "x": {}, "y": {"z": 81}}
    assert clustering.suggest_groups(["a", "b", "c", "x", "y", "z"], graph, 2) == [["a", "b", "c"], ["y", "z"]]
    assert clustering.suggest_groups(["a", "b", "c", "x", "y", "z"], graph, 3) == [["a", "b", "c"]]


def test_the_same_faces_always_make_the_same_suggestion_id():
    assert clustering.suggestion_id(["b", "a"]) == clustering.suggestion_id(["a", "b"])
    assert clustering.suggestion_id(["a", "b"]) != clustering.suggestion_id(["a", "c"])


def test_put_creates_the_user_once_and_renames_after(svc):
    assert people.put_person(svc, "ada", "Ada")[1] is True
    assert people.put_person(svc, "ada", "Ada Lovelace") == (svc.records.get_person("ada"), False)
    assert svc.people.users == {"ada"}


def test_a_person_recreated_in_a_new_collection_gets_their_user_back(svc):
    indexing.upload_image(svc, "a.png", photo_of("ada"), {})
    people.put_person(svc, "ada", "Ada")
    svc.people.users.clear()  # the collection was made again
    reply = people.associate_faces(svc, "ada", [_face(svc, "a.png")], 75.0)
    assert reply["associatedFaces"] == [{"FaceId": _face(svc, "a.png")}]


def test_a_person_has_at_most_a_hundred_faces(svc):
    people.put_person(svc, "ada", "Ada")
    for i in range(100):
        indexing.upload_image(svc, f"{i}.png", photo_of("ada", shade=i), {})
    ids = [_face(svc, f"{i}.png") for i in range(100)]
    assert len(people.associate_faces(svc, "ada", ids, 75.0)["associatedFaces"]) == 100
    indexing.upload_image(svc, "more.png", photo_of("ada", shade=200), {})
    with pytest.raises(BadRequest, match="at most 100"):
        people.associate_faces(svc, "ada", [_face(svc, "more.png")], 75.0)


def test_a_delete_that_failed_halfway_is_finished_by_the_same_request(svc):
    indexing.upload_image(svc, "a.png", photo_of("ada"), {"person": "ada"})

    class Failing:
        def __init__(self, engine):
            self._engine = engine

        def __getattr__(self, name):
            return getattr(self._engine, name)

        def delete_user(self, user_id):
            raise RuntimeError("the collection was out of reach")

    with pytest.raises(RuntimeError):
        people.delete_person(replace(svc, people=Failing(svc.people)), "ada")
    with pytest.raises(NotFound):  # the record went first: the person is gone for every read
        people.get_person(svc, "ada")
    assert svc.people.users == {"ada"}
    with pytest.raises(NotFound):  # already deleted, says the same request again, and finishes the job
        people.delete_person(svc, "ada")
    assert svc.people.users == set()


def test_on_aws_enrolment_happens_when_the_event_indexes_the_photo_and_only_once(svc):
    on_aws = replace(svc, index_on_upload=False)
    reply = indexing.upload_image(on_aws, "a.png", photo_of("ada"), {"person": "ada", "name": "Ada"})
    assert "enrolment" not in reply["image"] and svc.records.get_person("ada") is None
    version = svc.photos.head("a.png").version
    image = indexing.index_photo(on_aws, "a.png", version)
    assert image["enrolment"]["status"] == "associated"
    revision = image["revision"]
    assert indexing.index_photo(on_aws, "a.png", version)["revision"] == revision  # a repeated event
    assert svc.records.get_person("ada")["faceCount"] == 1


def test_the_same_bytes_again_naming_a_person_enrol_the_face_already_indexed(svc):
    indexing.upload_image(svc, "a.png", photo_of("ada"), {})
    reply = indexing.upload_image(svc, "a.png", photo_of("ada"), {"person": "ada"})
    assert reply["image"]["enrolment"]["status"] == "associated"
    assert svc.engine.calls.count("IndexFaces") == 1


def test_suggestions_group_the_faces_of_no_one_and_name_the_person_they_look_like(svc):
    for i, who in enumerate(["ada", "ada", "ada", "bob", "bob", "cy"]):
        indexing.upload_image(svc, f"{i}.png", photo_of(who, shade=i), {})
    indexing.upload_image(svc, "known.png", photo_of("bob", shade=9), {"person": "bob"})
    found = people.suggest_people(svc, 2)["suggestions"]
    assert [s["size"] for s in found] == [3, 2]
    assert [s["nearestPerson"] for s in found] == [None, {"personId": "bob", "similarity": 99.0}]
    people.associate_faces(svc, "bob", found[1]["faceIds"], 75.0)
    assert [s["size"] for s in people.list_suggestions(svc, 2)["suggestions"]] == [3]


def test_one_run_of_suggestions_groups_at_most_so_many_faces_and_says_there_are_more(svc, monkeypatch):
    for i in range(5):
        indexing.upload_image(svc, f"{i}.png", photo_of("ada", shade=i), {})
    monkeypatch.setattr(limits, "MAX_SUGGESTION_FACES", 3)
    reply = people.suggest_people(svc, 2)
    assert (reply["facesConsidered"], reply["moreFaces"]) == (3, True)
    assert [s["size"] for s in reply["suggestions"]] == [3]
    monkeypatch.setattr(limits, "MAX_SUGGESTION_FACES", 5)
    assert people.suggest_people(svc, 2)["moreFaces"] is False
