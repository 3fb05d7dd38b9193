"""Erasure through the HTTP API, on both wirings (real photos, dlib
offline, the Rekognition fake over moto on AWS): after it a search finds
nothing of the person, their name is in no photo or record, others keep
their faces, and the receipt lists what remains and until when."""

import json

import pytest

from chalicelib.core import erasure, limits
from tests.support.calls import indexed, search_photo
from tests.support.people import associate, search_people
from tests.support.photos import photo

KEANU, GROUP, OTHER_GROUP = "Keanu-Reeves.jpg", "Keanu-Avril-Mike.jpg", "Keanu-Avril-Lawrence.jpg"
NAME = {"x-amz-meta-name": "Keanu Reeves"}


def keanu_archive(client) -> list[str]:
    """Keanu enrolled by the upload of his portrait, and in a group photo
    whose `name` metadata names him (the other faces were labelled with it).
    Returns his two FaceIds."""
    portrait = indexed(client, "keanu.jpg", photo(KEANU), **{"x-amz-meta-person": "keanu", **NAME})
    assert portrait["image"]["enrolment"]["status"] == "associated"
    group = indexed(client, "party.jpg", photo(GROUP), **NAME, **{"x-amz-meta-place": "Venice"})
    faces = [face["FaceId"] for face in group["faces"]]
    joined = associate(client, "keanu", faces, threshold=80).json_body["associatedFaces"]
    assert len(joined) == 1
    indexed(client, "avril.jpg", photo("Avril-Lavigne.jpg"), **{"x-amz-meta-name": "Avril"})
    return [portrait["faces"][0]["FaceId"], joined[0]["FaceId"]]


def labels(client, name: str) -> list[str]:
    searched = search_photo(client, photo(name), "?faces=all").json_body["searchedFaces"]
    return [label for face in searched for label in face["matchedFaces"]]


def test_before_erasure_a_deleted_person_is_still_found_by_name(client):
    """The defect the erasure answers: DELETE /people/{id} keeps their faces, named by the metadata."""
    keanu_archive(client)
    assert client.http.delete("/people/keanu").status_code == 200
    assert "Keanu Reeves" in labels(client, OTHER_GROUP)


@pytest.mark.parametrize("how", ["post", "delete"])
def test_after_an_erasure_a_search_finds_nothing_of_the_person(api, how):
    client = api.client
    keanu = keanu_archive(client)
    erase = client.http.post if how == "post" else client.http.delete
    reply = erase("/people/keanu/erase" if how == "post" else "/people/keanu?erase=true")
    assert reply.status_code == 200, reply.body
    receipt = reply.json_body["erasure"]
    assert receipt["complete"] and receipt["found"] == "person"
    assert receipt["removed"]["faces"] == 2 and receipt["removed"]["user"] == 1 and receipt["removed"]["person"] == 1
    assert receipt["removed"]["names"] == 3  # keanu.jpg: person and name; party.jpg: name
    assert receipt["keptPhotos"] == ["party.jpg"]
    assert set(receipt["tombstone"]) == {"personId", "deletedAt", "erasedAt"}
    copies = " ".join(copy["copy"] for copy in receipt["copies"])
    if api.stage == "local":
        assert "write-ahead log" in copies and "index snapshot" in copies
    else:
        assert "point-in-time recovery" in copies and "older versions of photos" in copies
    assert "audit log" in copies

    # Nothing of him: by his own photo, by a group photo, by person.
    for name in (KEANU, GROUP, OTHER_GROUP):
        assert "Keanu Reeves" not in labels(client, name), name
    matched = search_photo(client, photo(KEANU)).json_body["matches"]
    assert not {match["FaceId"] for match in matched} & set(keanu)
    assert all(match["imageKey"] != "keanu.jpg" for match in matched)
    assert search_people(client, photo(KEANU)).json_body["people"] == []
    assert client.http.get("/people/keanu").status_code == 404
    for face_id in keanu:
        assert client.http.get(f"/faces/{face_id}").status_code == 404
    everything = json.dumps([client.http.get(f"/images/{key}").json_body for key in ("keanu.jpg", "party.jpg")])
    assert "Keanu" not in everything and '"keanu"' not in everything

    if api.stage == "dev":  # no version of a photo in the bucket keeps his name
        bucket = api.s3.list_buckets()["Buckets"][0]["Name"]
        for version in api.s3.list_object_versions(Bucket=bucket).get("Versions", []):
            head = api.s3.head_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])
            assert "Keanu" not in json.dumps(head["Metadata"]) and "keanu" not in head["Metadata"].values()

    # Others stay: the group photo with Avril and Mike, its other metadata.
    party = client.http.get("/images/party.jpg").json_body
    assert party["image"]["metadata"] == {"place": "Venice"} and len(party["faces"]) == 2
    assert "Avril" in labels(client, "Avril-Lavigne.jpg")


def test_an_erasure_again_replies_the_same_and_changes_nothing(client):
    keanu_archive(client)
    first = client.http.post("/people/keanu/erase?photos=true").json_body["erasure"]
    images = client.http.get("/images").json_body
    again = client.http.post("/people/keanu/erase?photos=true")
    assert again.status_code == 200 and again.json_body["erasure"]["removed"]["faces"] == 0
    assert client.http.get("/images").json_body == images
    assert first["removed"]["photos"] == 1  # his portrait; the group photo stays
    assert [image["key"] for image in images["images"]] == ["avril.jpg", "party.jpg"]


def test_photos_all_deletes_every_photo_that_showed_them(client):
    keanu_archive(client)
    receipt = client.http.post("/people/keanu/erase?photos=all").json_body["erasure"]
    assert receipt["removed"]["photos"] == 2 and receipt["keptPhotos"] == []
    assert [image["key"] for image in client.http.get("/images").json_body["images"]] == ["avril.jpg"]


def test_an_erasure_out_of_time_replies_202_and_the_same_request_carries_on(client, monkeypatch):
    keanu_archive(client)
    monkeypatch.setattr(limits, "ERASURE_SECONDS_PER_REQUEST", 0)
    monkeypatch.setattr(erasure, "SCAN_PAGE", 1)
    replies = [client.http.post("/people/keanu/erase")]
    while replies[-1].status_code == 202:
        assert not replies[-1].json_body["erasure"]["complete"] and "copies" not in replies[-1].json_body["erasure"]
        replies.append(client.http.post("/people/keanu/erase"))
    assert len(replies) >= 3 and replies[-1].status_code == 200
    assert "Keanu Reeves" not in labels(client, OTHER_GROUP)


@pytest.mark.parametrize("query", ["?photos=maybe", "?erase=yes"])
def test_a_bad_erasure_parameter_is_a_400(client, query):
    put = client.http.put("/people/keanu", body='{"name": "K"}', headers={"Content-Type": "application/json"})
    assert put.status_code == 201
    route = "/people/keanu/erase" if "photos" in query else "/people/keanu"
    reply = client.http.post(route + query) if "photos" in query else client.http.delete(route + query)
    assert reply.status_code == 400 and reply.json_body["error"] == "BadRequest"
    assert client.http.get("/people/keanu").status_code == 200
