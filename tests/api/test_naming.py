"""The naming rule over HTTP, on both wirings: a search without a threshold
uses the default for the archive's size and says so; an explicit threshold
keeps its meaning; every match and person found says how much to trust it.
A large archive: seeded synthetic faces offline, and on AWS the Rekognition
fake's DescribeCollection counting a million faces more."""

import json
from urllib.parse import quote

import pytest

from chalicelib import wiring
from chalicelib.aws import clients as aws
from chalicelib.aws.rekognition import STRANGERS as REKOGNITION_STRANGERS
from chalicelib.core import naming
from chalicelib.embedded.engine import STRANGERS as DLIB_STRANGERS
from chalicelib.ops import cli, seeding
from tests.support.photos import photo
from tests.support.stages import serving

JPEG = {"Content-Type": "image/jpeg"}
JSON = {"Content-Type": "application/json"}
LAWRENCE = ["Lawrence19.jpg", "Lawrence3.jpg", "Lawrence4.jpg"]  # searched with Lawrence2.jpg: 90 to 91 similar


def index_lawrence(client) -> list[str]:
    """Three photos of Lawrence, named, and their faces given to her."""
    face_ids = []
    for name in LAWRENCE:
        reply = client.http.put(f"/index/{name}", body=photo(name), headers={**JPEG, "x-amz-meta-name": "Lawrence"})
        assert reply.status_code == 201
        face_ids += [face["FaceId"] for face in client.http.get(f"/images/{quote(name)}").json_body["faces"]]
    assert client.http.put("/people/lawrence", body='{"name": "Lawrence"}', headers=JSON).status_code == 201
    body = json.dumps({"faceIds": face_ids})
    assert client.http.post("/people/lawrence/faces", body=body, headers=JSON).json_body["associatedFaces"]
    return face_ids


def search(client, query: str = "", route: str = "/search") -> dict:
    reply = client.http.post(f"{route}{query}", body=photo("Lawrence2.jpg"), headers=JPEG)
    assert reply.status_code == 200, reply.body
    return reply.json_body


def test_a_search_says_its_threshold_and_why_and_how_much_to_trust_each_match(api):
    client = api.client
    index_lawrence(client)
    info = client.http.get("/info").json_body
    model = DLIB_STRANGERS if api.stage == "local" else REKOGNITION_STRANGERS
    expected = naming.default_threshold(info["faces"], model)
    assert info["naming"]["defaultThreshold"] == expected and info["naming"]["strangerModel"]["mean"] == model.mean
    found = search(client)
    assert found["threshold"] == expected and f"{info['faces']:,} faces" in found["thresholdReason"]
    assert found["matchedFaces"] == ["Lawrence"] * 3
    assert all(match["confident"] and match["expectedStrangers"] <= 0.01 for match in found["matches"])
    asked = search(client, "?threshold=80")
    assert asked["threshold"] == 80 and asked["thresholdReason"].startswith("Asked for")
    assert asked["matchedFaces"] == ["Lawrence"] * 3
    people = search(client, route="/search/people")
    assert people["threshold"] == expected
    assert [(p["personId"], p["confident"]) for p in people["people"]] == [("lawrence", True)]
    every = search(client, "?faces=all")
    assert every["threshold"] == expected and every["searchedFaces"][0]["matches"][0]["confident"] is True


def test_a_stage_whose_strangers_come_closer_names_no_one_by_default_but_an_asked_80_still_gets_every_face(api):
    api.configure(FACEPRINT_STRANGER_SIMILARITY="90,2")  # before the first request: the stage's own model
    client = api.client
    face_ids = index_lawrence(client)
    found = search(client)
    assert found["threshold"] > 95 and found["matchedFaces"] == [] and found["faces"]["FaceMatches"] == []
    asked = search(client, "?threshold=80")
    assert asked["matchedFaces"] == ["Lawrence"] * 3
    assert all(not match["confident"] and match["expectedStrangers"] > 0.01 for match in asked["matches"])
    assert search(client, route="/search/people")["people"] == []
    (person,) = search(client, "?threshold=80", route="/search/people")["people"]
    assert person["personId"] == "lawrence" and person["confident"] is False
    matches = client.http.get(f"/faces/{face_ids[0]}/matches").json_body
    assert matches["threshold"] == found["threshold"] and matches["matchedFaces"] == []
    assert client.http.get(f"/faces/{face_ids[0]}/matches?threshold=80").json_body["matchedFaces"]


@pytest.fixture
def aws_api(tmp_path, monkeypatch):
    with serving("dev", tmp_path / "data", monkeypatch) as running:
        yield running


def test_a_rekognition_collection_of_a_million_faces_raises_the_default_from_one_describe_a_minute(aws_api):
    fake = aws.client("rekognition")
    fake.more_faces = 1_000_000
    client = aws_api.client
    index_lawrence(client)
    calls = fake.operations().count("DescribeCollection")
    found = search(client)
    faces = 1_000_000 + 3
    assert found["threshold"] == naming.default_threshold(faces, REKOGNITION_STRANGERS) == 94.8
    assert found["matchedFaces"] == [] and "1,000,003 faces" in found["thresholdReason"]
    asked = search(client, "?threshold=80")
    assert asked["matchedFaces"] == ["Lawrence"] * 3 and not any(m["confident"] for m in asked["matches"])
    assert search(client, route="/search/people")["people"] == []
    # FaceCount is asked once a minute at most, not on every search.
    assert fake.operations().count("DescribeCollection") - calls <= 1


def test_an_embedded_archive_of_twenty_thousand_seeded_faces_raises_the_default_and_names_no_stranger(
    tmp_path, monkeypatch
):
    with serving("local", tmp_path / "data", monkeypatch) as running:
        client = running.client
        index_lawrence(client)
        seeding.seed(wiring.services(cli.stage_settings("local")), 20_000)
        found = search(client)
        faces = client.http.get("/info").json_body["faces"]
        assert faces == 20_003 and found["threshold"] == naming.default_threshold(faces, DLIB_STRANGERS) > 85
        assert found["matchedFaces"] == ["Lawrence"] * 3 and all(m["confident"] for m in found["matches"])
        wide = search(client, "?threshold=70&max=100")
        strangers = [m for m in wide["matches"] if m["label"].startswith("Synthetic person")]
        assert strangers and not any(m["confident"] for m in strangers)
        assert all(m["Similarity"] < found["threshold"] for m in strangers)
