"""Suggested people over the whole shared archive, on both wirings: each
person's portraits in one group, no group mixing two people, and a
suggestion accepted in two requests."""

import pytest

from tests.support.calls import put_photo
from tests.support.people import associate, put_person
from tests.support.photos import label_faces, people, photo


@pytest.fixture(scope="module")
def archive(module_api):
    """Every shared photo indexed, and who each face is (a portrait's face
    is its person; a group photo's face, the person of the portrait that
    matches it; Justin and Barack by where they stand)."""
    client = module_api.client
    for name in people():
        put_photo(client, name, photo(name))
    faces = [face for name in people() for face in client.http.get(f"/images/{name}").json_body["faces"]]
    similar = {
        face["FaceId"]: {
            m["FaceId"]: m["Similarity"]
            for m in client.http.get(f"/faces/{face['FaceId']}/matches?threshold=0&max=100").json_body["matches"]
        }
        for face in faces
    }
    who = label_faces(
        [(face["imageKey"], face["BoundingBox"]["Left"]) for face in faces],
        lambda i, j: similar[faces[i]["FaceId"]].get(faces[j]["FaceId"], 0.0),
    )
    return client, {face["FaceId"]: person for face, person in zip(faces, who, strict=True)}


def portraits_of(person: str, identity: dict[str, str], client) -> set[str]:
    keys = {name for name, who in people().items() if who == [person]}
    return {face["FaceId"] for key in keys for face in client.http.get(f"/images/{key}").json_body["faces"]} & set(
        identity
    )


def test_every_face_of_the_archive_has_a_person(archive):
    _, identity = archive
    assert "?" not in identity.values()
    assert len(identity) == sum(len(who) for who in people().values())


def test_suggestions_put_each_persons_portraits_in_one_group_and_never_mix_people(archive):
    client, identity = archive
    reply = client.http.post("/people/suggestions")
    assert reply.status_code == 200
    body = reply.json_body
    groups = [set(s["faceIds"]) for s in body["suggestions"]]
    assert body["facesConsidered"] == len(identity)
    for group in groups:
        assert len({identity[face_id] for face_id in group}) == 1, "a group mixes two people"
    for person in ("lawrence", "keanu", "avril", "mike", "justin", "barack"):
        together = [group for group in groups if {f for f in identity if identity[f] == person} & group]
        assert len(together) == 1, f"{person}'s faces are split over {len(together)} groups"
    lawrence = portraits_of("lawrence", identity, client)
    assert len(lawrence) == 4 and any(lawrence <= group for group in groups)
    sizes = [s["size"] for s in body["suggestions"]]
    assert sizes == sorted(sizes, reverse=True) and min(sizes) >= 2
    for suggestion in body["suggestions"]:
        assert suggestion["sampleFaceId"] in suggestion["faceIds"] and suggestion["nearestPerson"] is None
    assert client.http.get("/people/suggestions").json_body["suggestions"] == body["suggestions"]
    larger = client.http.get("/people/suggestions?minFaces=3").json_body["suggestions"]
    assert larger == [s for s in body["suggestions"] if s["size"] >= 3]


def test_a_suggestion_is_accepted_by_naming_it_and_giving_it_its_faces(archive):
    client, identity = archive
    suggestions = client.http.post("/people/suggestions").json_body["suggestions"]
    largest = suggestions[0]
    person = identity[largest["faceIds"][0]]
    assert put_person(client, person, person.title()).status_code == 201
    reply = associate(client, person, largest["faceIds"])
    assert sorted(f["FaceId"] for f in reply.json_body["associatedFaces"]) == sorted(largest["faceIds"])
    left = client.http.get("/people/suggestions").json_body["suggestions"]
    assert largest["suggestionId"] not in [s["suggestionId"] for s in left]
    assert len(left) == len(suggestions) - 1
    # Found by a photo now, under the name given.
    portrait = next(name for name, who in people().items() if who == [person])
    found = client.http.post("/search/people", body=photo(portrait), headers={"Content-Type": "image/jpeg"})
    assert [p["personId"] for p in found.json_body["people"]] == [person]
    client.http.delete(f"/people/{person}")
