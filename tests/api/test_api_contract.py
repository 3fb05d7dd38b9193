"""The HTTP contract: bodies, keys, metadata, replacement and every error."""

import base64

import pytest

from chalicelib.core.keys import encode_key
from tests.support import imagegen
from tests.support.calls import indexed, put_photo, search_photo
from tests.support.photos import photo

PORTRAIT = photo("obama.jpg")  # ships with the tests: the contract runs on any clone


def assert_error(reply, status: int, code: str) -> None:
    assert reply.status_code == status, reply.body
    assert reply.json_body["error"] == code
    assert reply.json_body["message"]
    assert "Traceback" not in reply.body.decode()


def test_base64_text_indexes_like_the_raw_photo(client):
    raw = indexed(client, "raw.jpg", PORTRAIT)
    text = indexed(client, "text.jpg", base64.b64encode(PORTRAIT), "text/plain")
    assert [f["BoundingBox"] for f in text["faces"]] == [f["BoundingBox"] for f in raw["faces"]]
    assert text["image"]["etag"] == raw["image"]["etag"]


def test_base64_with_line_breaks_and_a_data_url_prefix_is_accepted(client):
    wrapped = base64.encodebytes(PORTRAIT)  # 76-column lines, as some scripts send
    assert put_photo(client, "wrapped.jpg", wrapped, "text/plain").status_code == 201
    data_url = b"data:image/jpeg;base64," + base64.b64encode(PORTRAIT)
    assert put_photo(client, "data-url.jpg", data_url, "text/plain").status_code == 201


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream"])
def test_other_declared_types_are_accepted_by_content(client, content_type):
    reply = put_photo(client, "k.jpg", PORTRAIT, content_type)
    assert reply.status_code == 201
    assert reply.json_body["image"]["contentType"] == "image/jpeg"


def test_post_indexes_like_put(client):
    reply = client.http.post("/index/k.jpg", body=PORTRAIT, headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 201
    assert len(client.http.get("/images/k.jpg").json_body["faces"]) == 1


def test_put_search_works_like_post(client):
    put_photo(client, "k.jpg", PORTRAIT)
    reply = client.http.put("/search", body=PORTRAIT, headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200 and reply.json_body["matchedFaces"] == ["K"]


def test_putting_a_name_again_replaces_its_photo_and_faces(client):
    indexed(client, "who.jpg", PORTRAIT)
    reply = indexed(client, "who.jpg", photo("Keanu-Avril-Mike.jpg"))
    assert len(reply["faces"]) == 3
    again = indexed(client, "who.jpg", photo("Keanu-Avril-Mike.jpg"))
    assert {f["FaceId"] for f in again["faces"]} == {f["FaceId"] for f in reply["faces"]}
    info = client.http.get("/info").json_body
    assert (info["images"], info["faces"]) == (1, 3)
    replaced = indexed(client, "who.jpg", photo("Jim-Carrey.jpg"))
    assert len(replaced["faces"]) == 1
    assert search_photo(client, photo("Avril-Lavigne.jpg")).json_body["matches"] == []
    assert client.http.get("/info").json_body["faces"] == 1


def test_keys_with_spaces_and_unicode_round_trip(client):
    reply = put_photo(client, "my%20photo%20%C3%A9t%C3%A9%20%F0%9F%98%80.jpg", PORTRAIT)
    assert reply.status_code == 201
    assert reply.json_body["image"]["key"] == "my photo été 😀.jpg"
    got = client.http.get("/images/my%20photo%20%C3%A9t%C3%A9%20%F0%9F%98%80.jpg")
    assert got.status_code == 200
    match = search_photo(client, PORTRAIT).json_body["matches"][0]
    assert match["imageKey"] == "my photo été 😀.jpg" and match["label"] == "My photo été 😀"


def test_name_metadata_labels_the_match(client):
    reply = put_photo(client, "k1.jpg", PORTRAIT, **{"x-amz-meta-name": "Barack Obama", "x-amz-meta-Source": "press"})
    assert reply.json_body["image"]["metadata"] == {"name": "Barack Obama", "source": "press"}
    body = search_photo(client, photo("obama3.jpg")).json_body  # two years apart
    assert body["matchedFaces"] == ["Barack Obama"]
    assert body["matches"][0]["metadata"] == {"name": "Barack Obama", "source": "press"}


@pytest.mark.parametrize(
    "name, make",
    [
        ("rgba.png", lambda: imagegen.encode(imagegen.shared("obama2.jpg").convert("RGBA"))),
        ("palette.png", lambda: imagegen.encode(imagegen.shared("obama2.jpg").convert("P"))),
        ("gray.png", lambda: imagegen.encode(imagegen.shared("obama2.jpg").convert("L"))),
        ("gray16.png", lambda: imagegen.png_16bit_gray("obama2.jpg")),
        ("exif6.jpg", lambda: imagegen.with_exif_orientation("obama2.jpg", 6)),
        ("exif8.jpg", lambda: imagegen.with_exif_orientation("obama2.jpg", 8)),
        ("exif3.jpg", lambda: imagegen.with_exif_orientation("obama2.jpg", 3)),
    ],
)
def test_every_png_mode_and_exif_orientation_finds_the_face(client, name, make):
    put_photo(client, "original.jpg", photo("obama2.jpg"))
    reply = indexed(client, name, make(), "image/png" if name.endswith("png") else "image/jpeg")
    (face,) = reply["faces"]
    original = client.http.get("/images/original.jpg").json_body["faces"][0]
    for side in ("Left", "Top", "Width", "Height"):  # the box lands where it is on the upright photo
        assert face["BoundingBox"][side] == pytest.approx(original["BoundingBox"][side], abs=0.06)
    assert search_photo(client, make(), "?max=5").json_body["matches"][0]["Similarity"] > 90


@pytest.mark.parametrize(
    "path",
    [
        "/index/..",
        "/index/%2E%2E",
        "/index/..%2Fetc%2Fpasswd",
        "/index/a%5Cb.jpg",
        "/index/line%0Abreak.jpg",
        "/index/tab%09.jpg",
        "/index/%FF%FE.jpg",
        "/index/" + "a" * 252 + ".jpg",
        "/index/" + "%C3%A9" * 128,
    ],
)
def test_bad_filenames_are_400(client, api, path):
    reply = client.http.put(path, body=PORTRAIT, headers={"Content-Type": "image/jpeg"})
    assert_error(reply, 400, "BadRequest")
    assert api.stored() == []


def test_a_255_byte_name_is_fine(client):
    assert put_photo(client, "a" * 251 + ".jpg", PORTRAIT).status_code == 201


@pytest.mark.parametrize(
    "body, content_type, status, code",
    [
        (b"", "image/jpeg", 400, "InvalidImage"),
        (b"GIF89a" + b"\0" * 100, "image/jpeg", 415, "UnsupportedMediaType"),
        (
            imagegen.encode(imagegen.shared("obama2.jpg"), "GIF"),
            "application/octet-stream",
            415,
            "UnsupportedMediaType",
        ),
        (
            imagegen.encode(imagegen.shared("obama2.jpg"), "BMP"),
            "application/octet-stream",
            415,
            "UnsupportedMediaType",
        ),
        (b"not base64 at all!", "text/plain", 415, "UnsupportedMediaType"),
        (base64.b64encode(b"GIF89a" + b"\0" * 10), "text/plain", 415, "UnsupportedMediaType"),
        (PORTRAIT[: len(PORTRAIT) // 2], "image/jpeg", 400, "InvalidImage"),
        (b"\xff\xd8\xff" + b"\0" * 500, "image/jpeg", 400, "InvalidImage"),
        (imagegen.png_header_only(10_000, 10_000), "image/png", 413, "PayloadTooLarge"),
        (imagegen.png_header_only(60_000, 60_000), "image/png", 413, "PayloadTooLarge"),
        (PORTRAIT + b"\0" * (15 * 1024 * 1024), "image/jpeg", 413, "PayloadTooLarge"),
    ],
    ids=[
        "empty",
        "gif-magic",
        "gif",
        "bmp",
        "text",
        "base64-gif",
        "truncated",
        "garbage-jpeg",
        "100mp-header",
        "3600mp-header",
        "over-15mb",
    ],
)
def test_bad_photos_get_clear_errors_and_store_nothing(client, api, body, content_type, status, code):
    assert_error(put_photo(client, "bad.jpg", body, content_type), status, code)
    assert_error(search_photo(client, body, content_type=content_type), status, code)
    assert client.http.get("/images/bad.jpg").status_code == 404
    assert api.stored() == []


def test_an_unaccepted_content_type_is_415_json(client, api):
    reply = client.http.put("/index/k.json", body=b"{}", headers={"Content-Type": "application/json"})
    assert_error(reply, 415, "UnsupportedMediaType")
    assert_error(search_photo(client, PORTRAIT, content_type="image/gif"), 415, "UnsupportedMediaType")


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-meta-name": "Zoë"},
        {"x-amz-meta-note": "x" * 2100},
        {f"x-amz-meta-k{i}": "v" * 100 for i in range(25)},
    ],
    ids=["non-ascii", "one-too-long", "too-many"],
)
def test_bad_metadata_is_400_and_stores_nothing(client, api, headers):
    assert_error(put_photo(client, "k.jpg", PORTRAIT, **headers), 400, "BadRequest")
    assert api.stored() == []


@pytest.mark.parametrize(
    "query",
    ["?threshold=abc", "?threshold=101", "?threshold=-1", "?threshold=nan", "?max=0", "?max=1.5", "?max=100000"],
)
def test_bad_search_parameters_are_400(client, query):
    assert_error(search_photo(client, PORTRAIT, query), 400, "BadRequest")


def test_unknown_images_are_404(client):
    assert_error(client.http.get("/images/nobody.jpg"), 404, "NotFound")


def test_a_wrong_method_is_405_json(client):
    assert_error(client.http.delete("/info"), 405, "MethodNotAllowedError")


def test_a_photo_in_a_folder_is_stored_read_listed_searched_and_deleted(client, api):
    """Keys may name folders, as S3 keys do. A path segment carries one
    either percent-encoded (make run) or in its b64: form (anywhere,
    API Gateway included)."""
    key = "album/été/keanu.jpg"
    segment = encode_key(key)
    assert indexed(client, segment, PORTRAIT, **{"x-amz-meta-name": "Keanu"})["image"]["key"] == key
    if api.stage == "local":
        assert client.http.get("/images/album%2F%C3%A9t%C3%A9%2Fkeanu.jpg").json_body["image"]["key"] == key
    assert [image["key"] for image in client.http.get("/images").json_body["images"]] == [key]
    assert client.http.get(f"/faces?image={segment}").json_body["faces"][0]["imageKey"] == key
    assert [m["imageKey"] for m in search_photo(client, PORTRAIT).json_body["matches"]] == [key]
    assert api.download(segment)[0] == 200
    assert client.http.delete(f"/images/{segment}").json_body == {"deleted": {"key": key, "faces": 1}}
    assert api.stored() == []
