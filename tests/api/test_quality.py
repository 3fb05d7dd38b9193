"""Faces an engine declines (Rekognition's QualityFilter and MaxFaces) are
kept on the image record with their boxes and reasons, the same on both
wirings; GET /info says which filter and limit are in force."""

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.support import imagegen
from tests.support.calls import put_photo
from tests.support.photos import photo

KEANU = "Keanu-Reeves.jpg"
KEANU_FACE_PX = 609  # the side of the face's box in Keanu-Reeves.jpg, as the engines measure it
REKOGNITION = botocore.session.get_session().get_service_model("rekognition")


def indexed(client, key: str, data: bytes) -> dict:
    """PUT the photo, then read back what indexing stored (on AWS the PUT's
    reply may be written before the S3 event indexes the photo)."""
    assert put_photo(client, key, data).status_code == 201
    reply = client.http.get(f"/images/{key}")
    assert reply.status_code == 200
    return reply.json_body


def reasons(image: dict) -> list[list[str]]:
    return [face["Reasons"] for face in image["unindexedFaces"]]


def area(box: dict) -> float:
    return box["Width"] * box["Height"]


def assert_declined_alone(body: dict, reason: str) -> dict:
    """The photo's only face was declined for `reason`: its box is returned."""
    assert body["image"]["status"] == "no_faces"
    assert (body["image"]["faceCount"], body["faces"]) == (0, [])
    (declined,) = body["image"]["unindexedFaces"]
    assert reason in declined["Reasons"]
    return declined["FaceDetail"]["BoundingBox"]


def test_a_face_darkened_to_near_black_is_declined_with_its_box(client):
    original = indexed(client, "keanu.jpg", photo(KEANU))["faces"][0]["BoundingBox"]
    body = indexed(client, "dark.jpg", imagegen.darkened(KEANU, 0.08))
    box = assert_declined_alone(body, "LOW_BRIGHTNESS")
    for side in ("Left", "Top", "Width", "Height"):
        assert box[side] == pytest.approx(original[side], abs=0.05)


def test_a_strongly_blurred_face_is_declined_as_not_sharp(client):
    body = indexed(client, "blurred.jpg", imagegen.blurred(KEANU, KEANU_FACE_PX / 25))
    assert_declined_alone(body, "LOW_SHARPNESS")


def test_a_small_face_is_indexed_by_default_and_declined_by_a_high_bar(client, api):
    small = imagegen.shrunk(KEANU, 45 / KEANU_FACE_PX)
    body = indexed(client, "small.jpg", small)
    assert (body["image"]["status"], len(body["faces"]), body["image"]["unindexedFaces"]) == ("indexed", 1, [])
    api.configure(FACEPRINT_QUALITY_FILTER="HIGH")
    assert_declined_alone(indexed(client, "small-high.jpg", small), "SMALL_BOUNDING_BOX")


def test_no_filter_indexes_a_face_the_default_declines(client, api):
    dark = imagegen.darkened(KEANU, 0.08)
    assert indexed(client, "dark-auto.jpg", dark)["image"]["status"] == "no_faces"
    api.configure(FACEPRINT_QUALITY_FILTER="NONE")
    body = indexed(client, "dark-none.jpg", dark)
    assert (body["image"]["status"], len(body["faces"]), body["image"]["unindexedFaces"]) == ("indexed", 1, [])


def test_a_limit_of_one_face_keeps_the_largest_and_lists_the_others(client, api):
    api.configure(FACEPRINT_MAX_FACES="1")
    body = indexed(client, "group.jpg", photo("Keanu-Avril-Mike.jpg"))
    assert body["image"]["status"] == "indexed"
    (kept,) = body["faces"]
    assert reasons(body["image"]) == [["EXCEEDS_MAX_FACES"], ["EXCEEDS_MAX_FACES"]]
    others = [face["FaceDetail"]["BoundingBox"] for face in body["image"]["unindexedFaces"]]
    assert all(area(kept["BoundingBox"]) > area(box) for box in others)


def test_declined_faces_conform_to_rekognition(client):
    body = indexed(client, "dark.jpg", imagegen.darkened(KEANU, 0.08))
    shape = REKOGNITION.shape_for("UnindexedFace")
    for face in body["image"]["unindexedFaces"]:
        report = ParamValidator().validate(face, shape)
        assert not report.has_errors(), report.generate_report()
        assert set(face["FaceDetail"]) >= {"BoundingBox", "Confidence", "Pose", "Quality"}


def test_info_reports_the_quality_filter_and_the_faces_per_photo_limit(client, api):
    info = client.http.get("/info").json_body
    assert (info["qualityFilter"], info["limits"]["maxFacesPerImage"]) == ("AUTO", 100)
    api.configure(FACEPRINT_QUALITY_FILTER="high", FACEPRINT_MAX_FACES="7")
    info = client.http.get("/info").json_body
    assert (info["qualityFilter"], info["limits"]["maxFacesPerImage"]) == ("HIGH", 7)
