"""One contract, three record stores: the in-memory fake the unit tests
use, SQLite (the embedded stage) and DynamoDB (moto). Every promise the
use cases rely on, the compare-and-set on revisions above all, holds in
each."""

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws.dynamodb import DynamoRecordStore
from chalicelib.core.ports import FaceKey, ImageState
from chalicelib.embedded.database import Database
from chalicelib.embedded.records import SqliteRecordStore
from chalicelib.ops.memory import InMemoryRecordStore
from tests.support.fake_rekognition import AWS_ENV, REGION, load_setup_script
from tests.support.records import face, image

IMAGES, FACES, PEOPLE = "images-test", "faces-test", "people-test"


@pytest.fixture(params=["memory", "sqlite", "dynamodb"])
def records(request, tmp_path, monkeypatch) -> Iterator:
    if request.param == "memory":
        yield InMemoryRecordStore()
    elif request.param == "sqlite":
        yield SqliteRecordStore(Database(tmp_path / "records.db"))
    else:
        for name, value in AWS_ENV.items():
            monkeypatch.setenv(name, value)
        with mock_aws():
            dynamodb = boto3.client("dynamodb", region_name=REGION)
            setup = load_setup_script()
            settings = setup.stage_settings(
                {
                    "FACEPRINT_ENGINE": "rekognition",
                    "FACEPRINT_BUCKET": "photos-test",
                    "FACEPRINT_IMAGES_TABLE": IMAGES,
                    "FACEPRINT_FACES_TABLE": FACES,
                    "FACEPRINT_PEOPLE_TABLE": PEOPLE,
                    "FACEPRINT_COLLECTION": "unused",
                    "FACEPRINT_INDEX_QUEUE": "unused",
                }
            )
            setup.create_tables(dynamodb, settings, log=lambda _: None)
            yield DynamoRecordStore(dynamodb, IMAGES, FACES, "photos-test", PEOPLE, stage="test")


def stored(records, key: str, faces: list[dict], **fields) -> dict:
    """A committed image with its faces, as an indexing run leaves it."""
    assert records.commit_faces(image(key, count=len(faces), **fields), faces, None).replaced == []
    return records.get_image(key)


def without_revision(record: dict) -> dict:
    return {name: value for name, value in record.items() if name != "revision"}


def test_an_image_and_its_faces_read_back_as_plain_json(records):
    faces = [face("f1", "k.jpg"), face("f2", "k.jpg", left=0.0)]
    got = stored(records, "k.jpg", faces)
    assert without_revision(got) == image("k.jpg", count=2) and isinstance(got["revision"], int)
    assert records.faces_of("k.jpg") == faces
    json.dumps(records.faces_of("k.jpg"))  # nothing JSON cannot hold (DynamoDB's Decimal)
    assert isinstance(records.faces_of("k.jpg")[0]["Confidence"], float)


def test_find_faces_returns_each_face_with_its_image_metadata(records):
    stored(records, "k.jpg", [face("f1", "k.jpg")])
    assert records.find_faces(["f1", "gone"]) == {"f1": (face("f1", "k.jpg"), {"name": "Keanu"})}
    assert records.get_face("f1") == face("f1", "k.jpg")
    assert records.get_face("gone") is None


def test_a_new_image_is_written_only_if_none_exists(records):
    assert isinstance(records.put_image(image("k.jpg", status="pending"), None)["revision"], int)
    assert records.put_image(image("k.jpg", etag="e2", status="pending"), None) is None
    assert records.get_image("k.jpg")["etag"] == "e1"


def test_each_write_is_a_compare_and_set_on_the_revision(records):
    first = records.put_image(image("k.jpg", status="pending"), None)
    second = records.put_image(image("k.jpg", etag="e2", status="pending"), first["revision"])
    assert second["revision"] == first["revision"] + 1
    assert records.put_image(image("k.jpg", etag="e3", status="pending"), first["revision"]) is None
    assert records.commit_faces(image("k.jpg", etag="e3"), [face("f9", "k.jpg")], first["revision"]) is None
    assert records.get_image("k.jpg")["etag"] == "e2"
    assert records.get_face("f9") is None and records.faces_of("k.jpg") == []


def test_recording_a_new_version_pending_keeps_the_old_faces_until_it_is_indexed(records):
    old = stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.put_image(image("k.jpg", etag="e2", status="pending", count=1), old["revision"])
    assert records.get_image("k.jpg")["status"] == "pending"
    assert [f["FaceId"] for f in records.faces_of("k.jpg")] == ["f1"]


def test_committing_replaces_the_faces_and_says_which(records):
    old = stored(records, "k.jpg", [face("f1", "k.jpg"), face("f2", "k.jpg")])
    committed = records.commit_faces(image("k.jpg", etag="e2", count=1), [face("f3", "k.jpg")], old["revision"])
    assert sorted(f["FaceId"] for f in committed.replaced) == ["f1", "f2"]
    assert committed.record == records.get_image("k.jpg")
    assert [f["FaceId"] for f in records.faces_of("k.jpg")] == ["f3"]
    assert records.find_faces(["f1", "f2"]) == {}


def test_committing_the_same_faces_again_replaces_none(records):
    old = stored(records, "k.jpg", [face("f1", "k.jpg")])
    renamed = {**image("k.jpg", count=1), "metadata": {"name": "Keanu Reeves"}}
    assert records.commit_faces(renamed, records.faces_of("k.jpg"), old["revision"]).replaced == []
    assert records.find_faces(["f1"])["f1"][1] == {"name": "Keanu Reeves"}


def test_a_record_made_again_never_repeats_a_revision_of_the_one_removed(records):
    """A run that read the old record must not write over the new one."""
    old = records.put_image(image("k.jpg", status="pending"), None)
    records.remove_image("k.jpg")
    new = records.put_image(image("k.jpg", status="pending"), None)
    assert new["revision"] != old["revision"]
    assert records.put_image(image("k.jpg", etag="stale", status="pending"), old["revision"]) is None
    assert records.commit_faces(image("k.jpg", etag="stale"), [face("f1", "k.jpg")], old["revision"]) is None
    assert records.remove_image("k.jpg", old["revision"]) is None
    assert records.get_image("k.jpg")["etag"] == "e1" and records.get_face("f1") is None


def test_the_re_drive_sees_the_longest_due_first_whatever_the_rest(records):
    """Records due in any order, many more than a batch: the batch is
    always the longest due, so new ones never starve old ones."""
    for minute in (7, 3, 9, 1, 5):
        moment = f"2026-01-01T00:0{minute}:00.000+00:00"
        records.put_image(image(f"{minute}.jpg", status="pending", pendingSince=moment), None)
    records.put_image(image("owed.jpg", owed={"retire": ["f9"], "since": "2026-01-01T00:02:00.000+00:00"}), None)
    assert records.list_pending("2026-01-02T00:00:00.000+00:00", 3) == ["1.jpg", "owed.jpg", "3.jpg"]
    later = image("1.jpg", status="pending", pendingSince="2026-01-01T00:01:00.000+00:00")
    records.put_image({**later, "retryAt": "2026-01-01T00:08:00.000+00:00"}, records.get_image("1.jpg")["revision"])
    assert records.list_pending("2026-01-02T00:00:00.000+00:00", 3) == ["owed.jpg", "3.jpg", "5.jpg"]


def test_pending_images_are_listed_oldest_first_once_old_enough(records):
    records.put_image(image("old.jpg", status="pending", pendingSince="2026-01-01T00:00:00.000+00:00"), None)
    records.put_image(image("new.jpg", status="pending", pendingSince="2026-01-01T00:10:00.000+00:00"), None)
    stored(records, "done.jpg", [])
    assert records.list_pending("2026-01-01T00:05:00.000+00:00", 10) == ["old.jpg"]
    assert sorted(records.list_pending("2026-01-02T00:00:00.000+00:00", 10)) == ["new.jpg", "old.jpg"]
    assert len(records.list_pending("2026-01-02T00:00:00.000+00:00", 1)) == 1
    pending = records.get_image("old.jpg")
    records.commit_faces(image("old.jpg"), [], pending["revision"])
    assert records.list_pending("2026-01-02T00:00:00.000+00:00", 10) == ["new.jpg"]


def test_removing_an_image_returns_its_faces_and_is_idempotent(records):
    stored(records, "k.jpg", [face("f1", "k.jpg")])
    assert records.remove_image("k.jpg") == ["f1"]
    assert records.remove_image("k.jpg") == []
    assert records.get_image("k.jpg") is None and records.get_face("f1") is None
    assert records.count_images() == 0


def test_removing_an_image_at_an_old_revision_removes_nothing(records):
    old = stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.put_image(image("k.jpg", etag="e2", status="pending", count=1), old["revision"])
    assert records.remove_image("k.jpg", old["revision"]) is None
    assert records.get_face("f1") is not None


def test_deleting_a_face_drops_it_from_its_image_and_moves_the_revision(records):
    old = stored(records, "k.jpg", [face("f1", "k.jpg"), face("f2", "k.jpg")])
    records.delete_face("f1")
    records.delete_face("f1")
    assert [f["FaceId"] for f in records.faces_of("k.jpg")] == ["f2"]
    now = records.get_image("k.jpg")
    assert now["faceCount"] == 1 and now["revision"] > old["revision"]


def test_images_and_faces_are_listed_with_opaque_tokens(records):
    for i in range(3):
        stored(records, f"{i}.jpg", [face(f"f{i}", f"{i}.jpg")])
    keys, token = [], None
    for _ in range(5):
        page = records.list_images(2, token)
        keys += [listed["key"] for listed in page.items]
        token = page.next
        if token is None:
            break
    assert sorted(keys) == ["0.jpg", "1.jpg", "2.jpg"]
    assert sorted(f["FaceId"] for f in records.list_faces(10).items) == ["f0", "f1", "f2"]
    assert records.count_images() == 3


def every_item(list_page, limit: int) -> list:
    items, token = [], None
    for _ in range(20):
        page = list_page(limit, token)
        items += page.items
        token = page.next
        if token is None:
            return items
    raise AssertionError("the listing never ended")


def test_the_id_only_listings_give_each_image_and_face_once(records):
    """What check reads at a million faces: key, etag, status and face count
    of each image; id and image key of each face; pages in any order."""
    stored(records, "a.jpg", [face("f1", "a.jpg"), face("f2", "a.jpg", left=0.0)])
    stored(records, "b.jpg", [face("f3", "b.jpg")], etag="e2")
    records.put_image(image("c.jpg", etag="e3", status="pending"), None)
    states = every_item(records.list_image_states, 2)
    assert sorted(states, key=lambda s: s.key) == [
        ImageState("a.jpg", "e1", "indexed", 2),
        ImageState("b.jpg", "e2", "indexed", 1),
        ImageState("c.jpg", "e3", "pending", 0),
    ]
    assert sorted(every_item(records.list_face_keys, 2), key=lambda f: f.face_id) == [
        FaceKey("f1", "a.jpg"),
        FaceKey("f2", "a.jpg"),
        FaceKey("f3", "b.jpg"),
    ]
    records.delete_face("f2")
    assert ImageState("a.jpg", "e1", "indexed", 1) in every_item(records.list_image_states, 10)
    assert [f.face_id for f in every_item(records.list_face_keys, 10) if f.image_key == "a.jpg"] == ["f1"]


def person(person_id: str, name: str = "Keanu Reeves") -> dict:
    moment = "2026-01-01T00:00:00.000+00:00"
    return {"personId": person_id, "name": name, "faceCount": 0, "createdAt": moment, "updatedAt": moment}


def test_a_person_is_created_once_and_renamed(records):
    assert records.get_person("keanu") is None
    assert records.create_person(person("keanu")) == person("keanu")
    assert records.create_person(person("keanu", "Someone else")) is None
    renamed = records.rename_person("keanu", "Keanu", "2026-02-01T00:00:00.000+00:00")
    assert renamed == {**person("keanu", "Keanu"), "updatedAt": "2026-02-01T00:00:00.000+00:00"}
    assert records.get_person("keanu") == renamed
    assert records.rename_person("nobody", "X", "2026-02-01T00:00:00.000+00:00") is None


def test_faces_given_to_a_person_carry_their_user_id(records):
    stored(records, "k.jpg", [face("f1", "k.jpg"), face("f2", "k.jpg", left=0.0)])
    records.create_person(person("keanu"))
    assert records.associate_faces("keanu", ["f1", "gone"]) == ["f1"]
    assert records.get_face("f1")["UserId"] == "keanu" and "UserId" not in records.get_face("f2")
    assert records.get_person("keanu")["faceCount"] == 1
    assert records.faces_of_person("keanu") == [{**face("f1", "k.jpg"), "UserId": "keanu"}]
    assert records.find_faces(["f1"])["f1"][0]["UserId"] == "keanu"
    assert records.associate_faces("nobody", ["f2"]) is None
    assert "UserId" not in records.get_face("f2")


def test_a_face_moves_from_one_person_to_another(records):
    stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.create_person(person("a"))
    records.create_person(person("b"))
    records.associate_faces("a", ["f1"])
    records.associate_faces("b", ["f1"])
    assert (records.get_person("a")["faceCount"], records.get_person("b")["faceCount"]) == (0, 1)
    assert records.faces_of_person("a") == []


def test_only_the_persons_own_faces_are_disassociated(records):
    stored(records, "k.jpg", [face("f1", "k.jpg"), face("f2", "k.jpg", left=0.0)])
    records.create_person(person("a"))
    records.create_person(person("b"))
    records.associate_faces("a", ["f1"])
    records.associate_faces("b", ["f2"])
    assert records.disassociate_faces("a", ["f1", "f2"]) == ["f1"]
    assert "UserId" not in records.get_face("f1") and records.get_face("f2")["UserId"] == "b"
    assert records.get_person("a")["faceCount"] == 0


def test_removing_a_person_keeps_their_faces_without_user_id(records):
    stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.create_person(person("keanu"))
    records.associate_faces("keanu", ["f1"])
    assert records.remove_person("keanu", "2026-03-01T00:00:00.000+00:00") == ["f1"]
    assert records.remove_person("keanu", "2026-03-02T00:00:00.000+00:00") is None
    assert records.get_person("keanu") is None
    assert records.get_face("f1") == face("f1", "k.jpg")


def test_a_deleted_person_leaves_a_tombstone_that_no_read_sees(records):
    records.create_person(person("keanu"))
    records.remove_person("keanu", "2026-03-01T00:00:00.000+00:00")
    assert records.person_deleted_at("keanu") == "2026-03-01T00:00:00.000+00:00"
    assert records.find_people(["keanu"]) == {} and records.list_people(10).items == []
    assert records.rename_person("keanu", "K", "2026-03-02T00:00:00.000+00:00") is None
    assert records.associate_faces("keanu", ["f1"]) is None
    assert records.person_deleted_at("nobody") is None


def test_a_person_is_made_again_over_a_tombstone_unless_deleted_since(records):
    records.create_person(person("keanu"))
    records.remove_person("keanu", "2026-03-01T00:00:00.000+00:00")
    assert records.create_person(person("keanu"), not_deleted_since="2026-02-01T00:00:00.000+00:00") is None
    assert records.get_person("keanu") is None
    assert records.create_person(person("keanu"), not_deleted_since="2026-04-01T00:00:00.000+00:00") == person("keanu")
    assert records.person_deleted_at("keanu") is None
    records.remove_person("keanu", "2026-05-01T00:00:00.000+00:00")
    assert records.create_person(person("keanu", "Again")) == person("keanu", "Again")


@pytest.mark.parametrize("how", ["delete_face", "replace", "remove_image"])
def test_faces_removed_leave_their_person(records, how):
    old = stored(records, "k.jpg", [face("f1", "k.jpg"), face("f2", "k.jpg", left=0.0)])
    records.create_person(person("keanu"))
    records.associate_faces("keanu", ["f1", "f2"])
    if how == "delete_face":
        records.delete_face("f1")
        left = ["f2"]
    elif how == "replace":
        committed = records.commit_faces(image("k.jpg", etag="e2", count=1), [face("f3", "k.jpg")], old["revision"])
        assert sorted((f["FaceId"], f.get("UserId")) for f in committed.replaced) == [("f1", "keanu"), ("f2", "keanu")]
        left = []
    else:
        records.remove_image("k.jpg")
        left = []
    assert [f["FaceId"] for f in records.faces_of_person("keanu")] == left
    assert records.get_person("keanu")["faceCount"] == len(left)


def test_rewriting_the_image_record_keeps_its_faces_people(records):
    """The same bytes put again with new metadata rewrite the image record
    only (put_image): the faces, and the people they were given, stay."""
    old = stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.create_person(person("keanu"))
    records.associate_faces("keanu", ["f1"])
    current = records.get_image("k.jpg")
    assert current["revision"] >= old["revision"]
    records.put_image({**image("k.jpg", count=1), "metadata": {"name": "K"}}, current["revision"])
    assert records.get_face("f1")["UserId"] == "keanu"
    assert records.find_faces(["f1"])["f1"][1] == {"name": "K"}
    assert records.get_person("keanu")["faceCount"] == 1


def test_people_are_found_in_a_batch_and_listed_with_opaque_tokens(records):
    for person_id in ("c", "a", "b"):
        records.create_person(person(person_id, person_id.upper()))
    records.save_suggestions({"suggestions": [], "computedAt": None})
    assert sorted(records.find_people(["a", "c", "gone"])) == ["a", "c"]
    ids, token = [], None
    for _ in range(5):
        page = records.list_people(2, token)
        ids += [listed["personId"] for listed in page.items]
        token = page.next
        if token is None:
            break
    assert sorted(ids) == ["a", "b", "c"]


def test_suggestions_are_saved_whole_and_read_back(records):
    assert records.get_suggestions() is None
    saved = {
        "suggestions": [{"suggestionId": "s-1", "faceIds": ["f1", "f2"], "size": 2, "sampleFaceId": "f1"}],
        "computedAt": "2026-01-01T00:00:00.000+00:00",
        "facesConsidered": 3,
        "threshold": 80.0,
    }
    records.save_suggestions(saved)
    assert records.get_suggestions() == saved
    records.save_suggestions({**saved, "suggestions": []})
    assert records.get_suggestions()["suggestions"] == []


def raw_person(records, person_id: str) -> dict | None:
    """Everything the store keeps of a person, tombstone or not, as stored."""
    if isinstance(records, InMemoryRecordStore):
        return records.people.get(person_id)
    if isinstance(records, SqliteRecordStore):
        rows = records._db.read("SELECT record, deleted_at FROM people WHERE person_id = ?", (person_id,))
        return {**json.loads(rows[0]["record"]), "deletedAt": rows[0]["deleted_at"]} if rows else None
    item = records._client.get_item(TableName=PEOPLE, Key={"personId": {"S": person_id}}).get("Item")
    return {name: next(iter(value.values())) for name, value in item.items()} if item else None


def test_a_tombstone_keeps_no_name(records):
    records.create_person(person("keanu", "Keanu Reeves"))
    records.remove_person("keanu", "2026-03-01T00:00:00.000+00:00")
    kept = raw_person(records, "keanu")
    assert "Keanu" not in json.dumps(kept)
    assert {name: value for name, value in kept.items() if value is not None} == {
        "personId": "keanu",
        "deletedAt": "2026-03-01T00:00:00.000+00:00",
    }


SINCE, ERASED = "2026-03-01T00:00:00.000+00:00", "2026-03-01T00:05:00.000+00:00"


def test_an_erasure_marks_a_person_keeping_their_name_and_faces_until_it_ends(records):
    stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.create_person(person("keanu", "Keanu Reeves"))
    records.associate_faces("keanu", ["f1"])
    marked = records.mark_erasure("keanu", {"since": SINCE, "photos": "none"})
    assert marked == {"since": SINCE, "photos": "none", "found": "person", "name": "Keanu Reeves"}
    assert records.get_person("keanu") is None and records.list_people(10).items == []
    assert records.person_deleted_at("keanu") == SINCE
    assert records.get_face("f1")["UserId"] == "keanu"  # until the erasure deletes it
    assert records.associate_faces("keanu", ["f1"]) is None
    assert records.create_person(person("keanu", "Again")) is None  # not while the erasure runs
    assert records.create_person(person("keanu"), not_deleted_since="2027-01-01T00:00:00.000+00:00") is None


def test_an_erasure_under_way_is_found_again_with_its_progress(records):
    records.create_person(person("keanu", "Keanu Reeves"))
    first = records.mark_erasure("keanu", {"since": SINCE, "photos": "none"})
    records.update_erasure("keanu", {**first, "faces": ["f1"], "removed": {"faces": 1}})
    again = records.mark_erasure("keanu", {"since": ERASED, "photos": "all"})
    assert again == {**first, "faces": ["f1"], "removed": {"faces": 1}}
    assert again["name"] == "Keanu Reeves" and again["since"] == SINCE


@pytest.mark.parametrize("before", ["tombstone", "nothing"])
def test_an_erasure_of_what_is_left_of_someone_leaves_a_tombstone(records, before):
    if before == "tombstone":
        records.create_person(person("keanu"))
        records.remove_person("keanu", "2026-02-01T00:00:00.000+00:00")
    marked = records.mark_erasure("keanu", {"since": SINCE, "photos": "own"})
    assert (marked["found"], marked["name"]) == (before, None)
    records.finish_erasure("keanu", ERASED)
    deleted = "2026-02-01T00:00:00.000+00:00" if before == "tombstone" else SINCE
    assert records.person_deleted_at("keanu") == deleted
    assert {k: v for k, v in raw_person(records, "keanu").items() if v is not None} == {
        "personId": "keanu",
        "deletedAt": deleted,
        "erasedAt": ERASED,
    }


def test_a_finished_erasure_keeps_only_the_id_and_the_times(records):
    stored(records, "k.jpg", [face("f1", "k.jpg")])
    records.create_person(person("keanu", "Keanu Reeves"))
    records.associate_faces("keanu", ["f1"])
    records.mark_erasure("keanu", {"since": SINCE, "photos": "none"})
    records.delete_face("f1")
    records.finish_erasure("keanu", ERASED)
    kept = raw_person(records, "keanu")
    assert "Keanu" not in json.dumps(kept) and "erasing" not in kept
    assert records.person_deleted_at("keanu") == SINCE
    assert records.create_person(person("keanu", "Someone new")) == person("keanu", "Someone new")
    assert records.mark_erasure("keanu", {"since": ERASED, "photos": "none"})["found"] == "person"


def test_the_erasures_under_way_are_listed_until_finished(records):
    records.create_person(person("keanu"))
    records.create_person(person("ada"))
    assert records.erasures_under_way() == []
    records.mark_erasure("keanu", {"since": SINCE, "photos": "own"})
    assert records.erasures_under_way() == [{"personId": "keanu", "since": SINCE, "photos": "own"}]
    records.finish_erasure("keanu", ERASED)
    assert records.erasures_under_way() == []
