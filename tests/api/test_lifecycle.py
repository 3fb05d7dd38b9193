"""Browse, delete and search every face: the lifecycle routes offline."""

import itertools

import pytest

from tests.support import imagegen
from tests.support.calls import put_photo, search_photo
from tests.support.photos import people, photo

GROUPS = sorted(name for name, who in people().items() if len(who) > 1)


@pytest.fixture
def three(client):
    for name in ("Keanu-Reeves.jpg", "Keanu-Avril-Mike.jpg", "no-face.jpg"):
        assert put_photo(client, name, photo(name)).status_code == 201
    return client


def test_images_page_in_stable_order_with_an_opaque_token(three):
    first = three.http.get("/images?limit=2").json_body
    assert len(first["images"]) == 2 and first["next"]
    second = three.http.get(f"/images?limit=2&next={first['next']}").json_body
    assert second["next"] is None
    keys = [i["key"] for i in first["images"] + second["images"]]
    assert keys == sorted(["Keanu-Reeves.jpg", "Keanu-Avril-Mike.jpg", "no-face.jpg"])
    assert [i["faceCount"] for i in first["images"] + second["images"]] == [3, 1, 0]


def test_faces_page_and_filter_by_image(three):
    everything, token = [], None
    while True:
        page = three.http.get("/faces?limit=1" + (f"&next={token}" if token else "")).json_body
        everything += page["faces"]
        token = page["next"]
        if token is None:
            break
    assert len(everything) == len({f["FaceId"] for f in everything}) == 4
    group = three.http.get("/faces?image=Keanu-Avril-Mike.jpg").json_body["faces"]
    assert len(group) == 3 and {f["imageKey"] for f in group} == {"Keanu-Avril-Mike.jpg"}
    face = group[0]
    assert three.http.get(f"/faces/{face['FaceId']}").json_body == {"face": face}


def test_bad_page_requests_are_400_and_unknown_things_404(three):
    assert three.http.get("/images?next=%%%").status_code == 400
    assert three.http.get("/images?limit=0").status_code == 400
    assert three.http.get("/faces/no-such-face").status_code == 404
    assert three.http.get("/faces?image=nobody.jpg").status_code == 404
    assert three.http.get("/images/nobody.jpg/file", headers={"Accept": "image/*"}).status_code == 404


def test_the_stored_photo_comes_back_with_its_type(three, api):
    """The README's `curl -H 'Accept: image/*'` download. Offline the API
    serves the bytes; on AWS it answers with a short-lived S3 link."""
    assert api.download("Keanu-Reeves.jpg") == (200, "image/jpeg", photo("Keanu-Reeves.jpg"))
    reply = three.http.get("/images/Keanu-Reeves.jpg/file", headers={"Accept": "image/*"})
    assert reply.status_code == (200 if api.stage == "local" else 307)


def test_a_photo_too_large_for_a_lambda_reply_downloads_too(client, api):
    """Up to 15 MB may be stored (copied into the bucket on AWS); a Lambda
    reply holds 6 MB, base64 of the body included."""
    big = imagegen.noise_png(2000)
    assert 6 * 1024 * 1024 < len(big) < 15 * 1024 * 1024
    assert put_photo(client, "big.png", big, "image/png").status_code == 201
    assert api.download("big.png") == (200, "image/png", big)


def test_deleting_a_face_removes_it_from_search_and_a_second_delete_is_404(three):
    keanu = three.http.get("/faces?image=Keanu-Reeves.jpg").json_body["faces"][0]["FaceId"]
    assert three.http.delete(f"/faces/{keanu}").status_code == 200
    matches = search_photo(three, photo("Keanu-Reeves.jpg"), "?max=100").json_body["matches"]
    assert keanu not in [m["FaceId"] for m in matches]
    assert three.http.get("/images/Keanu-Reeves.jpg").json_body["image"]["faceCount"] == 0
    assert three.http.delete(f"/faces/{keanu}").status_code == 404
    assert three.http.get("/info").json_body["faces"] == 3


def test_deleting_an_image_removes_photo_faces_and_records(three, api):
    assert three.http.delete("/images/Keanu-Avril-Mike.jpg").json_body == {
        "deleted": {"key": "Keanu-Avril-Mike.jpg", "faces": 3}
    }
    assert three.http.get("/images/Keanu-Avril-Mike.jpg").status_code == 404
    for name in ("Avril-Lavigne.jpg", "Mike-Meyers.jpg"):
        assert search_photo(three, photo(name)).json_body["matches"] == []
    assert [m["imageKey"] for m in search_photo(three, photo("Keanu-Reeves.jpg")).json_body["matches"]] == [
        "Keanu-Reeves.jpg"
    ]
    info = three.http.get("/info").json_body
    assert (info["images"], info["faces"]) == (2, 1)
    assert len(api.stored()) == 2
    assert three.http.delete("/images/Keanu-Avril-Mike.jpg").status_code == 404


@pytest.fixture(scope="module")
def archive(module_api):
    for name in people():
        put_photo(module_api.client, name, photo(name))
    return module_api.client


@pytest.mark.parametrize("name", GROUPS)
def test_every_face_search_finds_everyone_in_a_group_photo_and_nobody_extra(archive, name):
    reply = search_photo(archive, photo(name), "?faces=all&max=100")
    assert reply.status_code == 200
    body = reply.json_body
    assert len(body["faces"]) == len(body["searchedFaces"]) == len(people()[name])
    present = set(people()[name])
    candidates = []
    for face in body["searchedFaces"]:
        others = [m["imageKey"] for m in face["matches"] if m["imageKey"] != name]
        assert others, "a face matched no other photo"
        assert all(present & set(people()[key]) for key in others), "matched a photo of nobody present"
        candidates.append(set.intersection(*(set(people()[key]) for key in others)) & present)
    # Some assignment gives each face a different person, and covers everyone.
    assert any(
        all(person in options for person, options in zip(order, candidates, strict=True))
        for order in itertools.permutations(present)
    ), candidates
    areas = [f["BoundingBox"]["Width"] * f["BoundingBox"]["Height"] for f in body["searchedFaces"]]
    assert areas == sorted(areas, reverse=True)


def test_every_face_search_of_a_photo_without_faces_is_empty(archive):
    body = search_photo(archive, photo("no-face.jpg"), "?faces=all").json_body
    assert (body["faces"], body["searchedFaces"]) == ([], [])


def test_an_unknown_faces_mode_is_400(archive):
    assert search_photo(archive, photo("no-face.jpg"), "?faces=some").status_code == 400
