"""Erasure over the in-memory fakes (core/erasure.py): nothing of the
person is left, other people keep their faces, and a crash at any step is
finished by the same request again (every step explored, by machine)."""

import json
from dataclasses import replace

import pytest

from chalicelib.core import erasure, indexing, people, searching
from chalicelib.core.erasure import erase_person
from chalicelib.ops import maintenance
from chalicelib.ops.memory import fake_services, photo_of


@pytest.fixture
def svc():
    return fake_services()


def archive(svc) -> None:
    """Ada, enrolled by the upload of her portrait, also in a group photo
    with Bob whose `name` metadata named her; Bob alone; a caption naming her."""
    indexing.upload_image(svc, "ada.png", photo_of("ada"), {"person": "ada", "name": "Ada Lovelace"})
    indexing.upload_image(svc, "party.png", photo_of("ada", "bob"), {"name": "Ada Lovelace", "place": "London"})
    indexing.upload_image(svc, "bob.png", photo_of("bob"), {"name": "Bob"})
    indexing.upload_image(svc, "caption.png", photo_of("carl"), {"caption": "Carl and ada lovelace, 1843"})
    ada_in_party = next(f["FaceId"] for f in svc.records.faces_of("party.png") if whose(svc, f) == "ada")
    people.associate_faces(svc, "ada", [ada_in_party], 0)
    people.suggest_people(svc, 2)
    assert len(svc.records.faces_of_person("ada")) == 2


def whose(svc, face: dict) -> str:
    return svc.engine.faces[face["FaceId"]]["_person"]


def search_labels(svc, who: str) -> list[str]:
    return searching.search_image(svc, photo_of(who), 80, 10)["matchedFaces"]


def everything(svc) -> str:
    """All the records, photos' metadata and collection hold, as text."""
    return json.dumps(
        [
            svc.records.images,
            svc.records.faces,
            {i: p for i, p in svc.records.people.items() if i != "ada"},  # her tombstone: below
            svc.records.suggestions,
            {k: p.metadata for k, p in svc.photos.current.items()},
            {i: f for i, f in svc.engine.faces.items()},
            sorted(svc.people.users),
        ],
        default=str,
    )


def assert_erased(svc) -> None:
    assert search_labels(svc, "ada") == []
    assert svc.people.search_users_by_image(photo_of("ada"), 80, 10)["UserMatches"] == []
    assert not any(f["_person"] == "ada" for f in svc.engine.faces.values())
    kept = everything(svc)
    assert "lovelace" not in kept.casefold() and '"ada"' not in kept
    assert svc.records.people["ada"] == {
        "personId": "ada",
        "deletedAt": svc.records.people["ada"]["deletedAt"],
        "erasedAt": svc.records.people["ada"]["erasedAt"],
    }
    assert erasure.check_erased(svc, "ada", "Ada Lovelace") == []
    assert maintenance.check(svc) == []


def test_before_an_erasure_a_deleted_person_is_still_found_by_name(svc):
    """The defect: DELETE /people/{id} leaves their faces, labelled from the photos' metadata."""
    archive(svc)
    people.delete_person(svc, "ada")
    assert "Ada Lovelace" in search_labels(svc, "ada") and "Ada Lovelace" in search_labels(svc, "bob")


def test_an_erasure_leaves_nothing_of_the_person_and_says_what_went(svc):
    archive(svc)
    receipt = erase_person(svc, "ada")
    assert receipt["complete"] and receipt["found"] == "person"
    assert receipt["removed"] == {
        "person": 1,
        "faces": 2,
        "photos": 0,
        "names": 4,  # ada.png: person and name; party.png: name; caption.png: caption
        "records": 3,
        "suggestions": 0,
        "user": 1,
    }
    assert receipt["keptPhotos"] == ["party.png"]  # its pixels still show her: the receipt says so
    assert receipt["tombstone"]["personId"] == "ada"
    assert_erased(svc)
    # Everyone else stays: Bob's faces, his name, the other metadata.
    assert sorted(search_labels(svc, "bob")) == ["Bob", "Party"]  # the group photo's label: its file name now
    assert svc.photos.head("party.png").metadata == {"place": "London"}
    assert [whose(svc, f) for f in svc.records.faces_of("party.png")] == ["bob"]
    assert svc.records.get_image("ada.png")["faceCount"] == 0 and "enrolment" not in svc.records.get_image("ada.png")


def test_photos_own_deletes_the_photos_only_they_are_in(svc):
    archive(svc)
    receipt = erase_person(svc, "ada", photos="own")
    assert receipt["removed"]["photos"] == 1 and receipt["keptPhotos"] == ["party.png"]
    assert svc.photos.head("ada.png") is None and svc.records.get_image("ada.png") is None
    assert svc.photos.head("party.png") is not None and svc.photos.head("caption.png") is not None
    assert_erased(svc)


def test_photos_all_deletes_group_photos_too_with_everyone_in_them(svc):
    archive(svc)
    receipt = erase_person(svc, "ada", photos="all")
    assert receipt["removed"]["photos"] == 3 and receipt["keptPhotos"] == []  # caption.png named her
    assert sorted(svc.photos.current) == ["bob.png"]
    assert search_labels(svc, "bob") == ["Bob"]
    assert_erased(svc)


def test_an_erased_face_in_a_kept_photo_stays_out_through_a_reindex(svc, tmp_path):
    archive(svc)
    erase_person(svc, "ada")
    maintenance.reindex(svc, tmp_path / "progress.json")
    assert [whose(svc, f) for f in svc.records.faces_of("party.png")] == ["bob"]
    assert_erased(svc)


def test_suggestions_lose_their_faces(svc):
    indexing.upload_image(svc, "a1.png", photo_of("ada"), {})
    indexing.upload_image(svc, "a2.png", photo_of("ada", shade=1), {})
    people.put_person(svc, "ada", "Ada Lovelace")
    saved = people.suggest_people(svc, 2)
    assert saved["suggestions"][0]["size"] == 2
    ids = saved["suggestions"][0]["faceIds"]
    people.associate_faces(svc, "ada", ids[:1], 0)
    receipt = erase_person(svc, "ada")
    assert receipt["removed"]["suggestions"] == 1
    assert not set(ids[:1]) & set(json.dumps(svc.records.suggestions))


def test_an_erasure_again_is_the_same_receipt_and_changes_nothing(svc):
    archive(svc)
    first = erase_person(svc, "ada")
    before = everything(svc)
    again = erase_person(svc, "ada")
    assert everything(svc) == before
    assert again["complete"] and again["found"] == "nothing" or again["found"] == "tombstone"
    assert again["removed"]["faces"] == 0 and first["removed"]["faces"] == 2


def test_an_erasure_of_someone_deleted_before_needs_their_name_to_find_it(svc):
    archive(svc)
    people.delete_person(svc, "ada")
    receipt = erase_person(svc, "ada")
    assert receipt["found"] == "tombstone" and "note" in receipt
    assert "lovelace" in json.dumps(svc.records.images["caption.png"])  # only her id was known
    erase_person(svc, "ada", name="Ada Lovelace")
    assert "lovelace" not in everything(svc).casefold()


def test_a_person_cannot_be_made_again_while_being_erased(svc):
    archive(svc)
    svc.records.mark_erasure("ada", {"since": svc.clock(), "photos": "none"})
    with pytest.raises(Exception, match="kept changing"):
        people.put_person(svc, "ada", "Ada")


def test_a_time_budget_stops_the_scan_and_the_next_call_carries_on(svc, monkeypatch):
    archive(svc)
    for i in range(5):
        indexing.upload_image(svc, f"more-{i}.png", photo_of("zed", shade=i), {"name": "Ada Lovelace"})
    monkeypatch.setattr(erasure, "SCAN_PAGE", 2)
    first = erase_person(svc, "ada", budget_seconds=0)
    assert not first["complete"] and "copies" not in first and "Lovelace" in everything(svc)
    calls = 1
    while not erase_person(svc, "ada", budget_seconds=0)["complete"]:
        calls += 1
    assert calls > 2
    assert_erased(svc)


class Crash(BaseException):
    """A process killed at this call (no `except Exception` catches it)."""


class Crashing:
    """A port whose calls are counted across all the ports; the call
    numbered `at` raises Crash, before it takes effect."""

    def __init__(self, port, counter: list[int], at: int) -> None:
        self._port, self._counter, self._at = port, counter, at

    def __getattr__(self, name):
        value = getattr(self._port, name)
        if not callable(value) or name.startswith("_"):
            return value

        def call(*args, **kwargs):
            self._counter[0] += 1
            if self._counter[0] == self._at:
                raise Crash(f"crashed at call {self._at}: {name}")
            return value(*args, **kwargs)

        return call


@pytest.mark.parametrize("photos", ["none", "own", "all"])
def test_a_crash_at_any_call_is_finished_by_the_same_request_again(photos):
    """Every call of the erasure to any port, crashed in turn: the retry
    always ends with the same archive as an erasure that never crashed."""
    clean = fake_services()
    archive(clean)
    expected = erase_person(clean, "ada", photos=photos)
    at = 0
    while True:
        at += 1
        svc = fake_services()
        archive(svc)
        counter = [0]
        crashing = replace(
            svc,
            **{port: Crashing(getattr(svc, port), counter, at) for port in ("engine", "records", "photos", "people")},
        )
        try:
            erase_person(crashing, "ada", photos=photos)
        except Crash:
            receipt = erase_person(svc, "ada", photos=photos)
            assert receipt["complete"], at
            assert_erased(svc)
            assert sorted(svc.photos.current) == sorted(clean.photos.current), at
            assert receipt["removed"]["photos"] <= expected["removed"]["photos"]
            assert receipt["keptPhotos"] == expected["keptPhotos"], at
            continue
        assert counter[0] < at  # ran to the end without reaching the crash: every call was tried
        break
    print(f"{photos}: crashed at each of {at - 1} calls")
    assert at > 20


def test_an_erasure_left_halfway_is_finished_by_the_scheduled_check(svc):
    archive(svc)
    counter = [0]
    crashing = replace(svc, records=Crashing(svc.records, counter, 12))
    with pytest.raises(Crash):
        erase_person(crashing, "ada")
    assert svc.records.erasures_under_way()[0]["personId"] == "ada"
    assert erasure.finish_under_way(svc) == []  # too recent: a request may still be working on it
    later = replace(svc, clock=lambda: "2999-01-01T00:00:00.000+00:00")
    assert erasure.finish_under_way(later) == ["ada"]
    assert svc.records.erasures_under_way() == []
    assert_erased(svc)
