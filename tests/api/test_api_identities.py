"""The whole shared archive indexed through the HTTP API, then searched:
every face found, every identity right, no false match between people."""

import base64

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.support.calls import put_photo, search_photo
from tests.support.photos import people, photo, photos_with

REKOGNITION = botocore.session.get_session().get_service_model("rekognition")


def assert_shape(value: dict, operation: str) -> None:
    """`value` conforms to the Rekognition operation's output shape."""
    shape = REKOGNITION.operation_model(operation).output_shape
    report = ParamValidator().validate(value, shape)
    assert not report.has_errors(), report.generate_report()


def assert_face_shape(face: dict) -> None:
    face = {k: v for k, v in face.items() if k != "imageKey"}
    report = ParamValidator().validate(face, REKOGNITION.shape_for("Face"))
    assert not report.has_errors(), report.generate_report()


@pytest.fixture(scope="module")
def archive(module_api):
    """A client over an archive holding every shared photo, the upload
    replies, and each image read back once indexed."""
    replies = {name: put_photo(module_api.client, name, photo(name)) for name in people()}
    images = {name: module_api.client.http.get(f"/images/{name}").json_body for name in people()}
    return module_api.client, replies, images


def test_every_photo_is_accepted(archive):
    _, replies, _ = archive
    assert {name: reply.status_code for name, reply in replies.items()} == {name: 201 for name in people()}


def test_every_face_is_found_and_no_more(archive):
    _, _, images = archive
    found = {name: len(image["faces"]) for name, image in images.items()}
    assert found == {name: len(who) for name, who in people().items()}


def test_statuses_say_indexed_or_no_faces(archive):
    _, _, images = archive
    statuses = {name: image["image"]["status"] for name, image in images.items()}
    assert statuses == {name: "indexed" if who else "no_faces" for name, who in people().items()}


def test_the_small_rotated_face_is_found(archive):
    _, _, images = archive
    faces = images["Justin-Trudeau-Barack-Obama-Lawrence.jpg"]["faces"]
    small = [f for f in faces if f["BoundingBox"]["Height"] < 0.08]
    assert len(small) == 1
    # About 50 px high in a 894 px photo, in the inset near the middle.
    box = small[0]["BoundingBox"]
    assert 0.3 < box["Left"] < 0.5 and 0.3 < box["Top"] < 0.5


@pytest.mark.parametrize("name", sorted(n for n, who in people().items() if len(who) == 1))
def test_a_portrait_finds_exactly_the_photos_of_that_person(archive, name):
    client, _, _ = archive
    (person,) = people()[name]
    reply = search_photo(client, photo(name), "?max=100")
    assert reply.status_code == 200
    matched = [m["imageKey"] for m in reply.json_body["matches"]]
    assert set(matched) == photos_with(person)
    assert len(matched) == len(set(matched)), "two faces of one photo matched the same person"


@pytest.mark.parametrize("name", sorted(n for n, who in people().items() if len(who) > 1))
def test_a_group_photo_finds_the_photos_of_its_largest_face(archive, name):
    client, _, _ = archive
    reply = search_photo(client, photo(name), "?max=100")
    matched = {m["imageKey"] for m in reply.json_body["matches"]}
    assert name in matched
    assert any(matched == photos_with(person) for person in people()[name]), matched


def test_the_small_rotated_face_is_matched_to_its_person(archive):
    client, _, images = archive
    small_id = next(
        f["FaceId"]
        for f in images["Justin-Trudeau-Barack-Obama-Lawrence.jpg"]["faces"]
        if f["BoundingBox"]["Height"] < 0.08
    )
    reply = search_photo(client, photo("Lawrence19.jpg"), "?max=100")
    assert small_id in [m["FaceId"] for m in reply.json_body["matches"]]


def test_matches_come_best_first_with_labels_from_filenames(archive):
    client, _, _ = archive
    body = search_photo(client, photo("Keanu-Reeves.jpg"), "?max=100").json_body
    similarities = [m["Similarity"] for m in body["matches"]]
    assert similarities == sorted(similarities, reverse=True)
    assert all(s >= 80 for s in similarities)
    assert body["matchedFaces"][0] == "Keanu reeves"
    assert set(body["matchedFaces"]) == {"Keanu reeves", "Keanu avril lawrence", "Keanu avril mike"}


def test_threshold_and_max_narrow_the_matches(archive):
    client, _, _ = archive
    everyone = search_photo(client, photo("Lawrence2.jpg"), "?max=100").json_body["matches"]
    assert len(everyone) == len(photos_with("lawrence"))
    assert len(search_photo(client, photo("Lawrence2.jpg"), "?max=2").json_body["matches"]) == 2
    strict = search_photo(client, photo("Lawrence2.jpg"), "?threshold=99.9").json_body["matches"]
    assert [m["imageKey"] for m in strict] == ["Lawrence2.jpg"]  # only the very same photo
    loose = search_photo(client, photo("Lawrence2.jpg"), "?threshold=0&max=100").json_body["matches"]
    assert len(loose) == sum(len(who) for who in people().values())


def test_a_photo_without_a_face_searches_to_empty_lists(archive):
    client, _, _ = archive
    reply = search_photo(client, photo("no-face.jpg"))
    assert reply.status_code == 200
    assert reply.json_body["matches"] == [] and reply.json_body["matchedFaces"] == []
    assert reply.json_body["faces"]["FaceMatches"] == []
    assert "SearchedFaceBoundingBox" not in reply.json_body["faces"]


def test_base64_text_searches_like_the_raw_photo(archive):
    client, _, _ = archive
    raw = search_photo(client, photo("Mike-Meyers.jpg")).json_body
    text = search_photo(client, base64.b64encode(photo("Mike-Meyers.jpg")), content_type="text/plain").json_body
    assert text == raw


def test_search_replies_conform_to_rekognition(archive):
    client, _, _ = archive
    for name in ("Keanu-Avril-Mike.jpg", "no-face.jpg"):
        assert_shape(search_photo(client, photo(name)).json_body["faces"], "SearchFacesByImage")


def test_face_records_conform_to_rekognition(archive):
    _, _, images = archive
    for image in images.values():
        for face in image["faces"]:
            assert_face_shape(face)


def test_the_upload_reply_is_the_record_as_it_stood(archive, module_api):
    """Offline the photo is indexed before the reply, which is what a read
    returns; on AWS the reply says pending (the S3 event indexes it later)."""
    _, replies, images = archive
    for name, reply in replies.items():
        if module_api.stage == "local":
            assert reply.json_body == images[name]
        else:
            assert reply.json_body["image"]["status"] == "pending" and reply.json_body["faces"] == []
            assert reply.json_body["image"]["etag"] == images[name]["image"]["etag"]


def test_info_counts_the_archive(archive):
    client, _, _ = archive
    info = client.http.get("/info").json_body
    assert (info["stage"], info["engine"]) in [("local", "local"), ("dev", "rekognition")]
    assert info["images"] == len(people())
    assert info["faces"] == sum(len(who) for who in people().values())
    assert info["limits"]["maxImageBytes"] == 15 * 1024 * 1024


def test_the_embedded_engine_indexes_in_rekognitions_shape(tmp_path):
    from chalicelib import wiring
    from chalicelib.core.config import Settings

    svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path)}))
    stored = svc.photos.put("g.jpg", photo("Keanu-Avril-Mike.jpg"), "image/jpeg", {})
    result = svc.engine.index_faces(stored.version, "g.jpg")
    assert len(result["FaceRecords"]) == 3
    assert_shape(result, "IndexFaces")
