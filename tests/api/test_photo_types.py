"""The photos people have: HEIC/HEIF, WebP and AVIF are taken beside JPEG
and PNG, stored and indexed as upright JPEGs that keep their EXIF and ICC
profile; anything else is refused with the list of what is accepted."""

import io

import pytest
from PIL import Image

from tests.api.test_api_contract import assert_error
from tests.support import imagegen
from tests.support.calls import put_photo, search_photo
from tests.support.photos import photo

GROUP = "Keanu-Avril-Mike.jpg"  # three faces, an ICC profile and EXIF
ACCEPTED = ["image/jpeg", "image/png", "image/heic", "image/heif", "image/webp", "image/avif"]


def _boxes(client, key: str) -> list[dict]:
    # Read back with GET: on AWS the PUT reply may be `pending`.
    faces = client.http.get(f"/images/{key}").json_body["faces"]
    return sorted((face["BoundingBox"] for face in faces), key=lambda box: box["Left"])


@pytest.mark.parametrize("content_type", list(imagegen.CONVERTED))
def test_a_phone_photo_is_stored_as_an_upright_jpeg_with_its_metadata_and_found(client, api, content_type):
    put_photo(client, "upright.jpg", photo(GROUP))
    sent = imagegen.phone_photo(GROUP, content_type)
    reply = put_photo(client, "phone", sent, content_type, **{"x-amz-meta-name": "The three"})
    assert reply.status_code == 201, reply.body

    image = client.http.get("/images/phone").json_body["image"]
    assert image["status"] == "indexed" and image["faceCount"] == 3
    assert (image["contentType"], image["originalContentType"]) == ("image/jpeg", content_type)
    assert image["metadata"] == {"name": "The three"}
    assert "originalContentType" not in client.http.get("/images/upright.jpg").json_body["image"]
    for box, upright in zip(_boxes(client, "phone"), _boxes(client, "upright.jpg"), strict=True):
        for side in ("Left", "Top", "Width", "Height"):  # where it is on the upright photo
            assert box[side] == pytest.approx(upright[side], abs=0.05)

    status, stored_type, body = api.download("phone")
    assert status == 200 and stored_type == "image/jpeg"
    stored, original = Image.open(io.BytesIO(body)), Image.open(io.BytesIO(photo(GROUP)))
    assert stored.format == "JPEG" and stored.size == original.size == (1924, 1032)
    assert stored.info["icc_profile"] == original.info["icc_profile"]
    exif = stored.getexif()
    assert exif[0x0112] == 1 and exif[0x010F] == imagegen.TEST_MAKE
    assert exif.get_ifd(0x8769) == original.getexif().get_ifd(0x8769)  # the camera's Exif IFD, tag for tag

    matches = search_photo(client, photo("Avril-Lavigne.jpg")).json_body["matches"]
    assert {match["imageKey"] for match in matches} == {"upright.jpg", "phone"}
    again = put_photo(client, "phone", sent, content_type, **{"x-amz-meta-name": "The three"})
    assert again.status_code == 201
    assert client.http.get("/images/phone").json_body["image"]["etag"] == image["etag"]  # same photo, same JPEG


@pytest.mark.parametrize("content_type", list(imagegen.CONVERTED))
def test_a_search_by_a_phone_photo_finds_everyone_in_it(client, content_type):
    put_photo(client, "avril.jpg", photo("Avril-Lavigne.jpg"), **{"x-amz-meta-name": "Avril"})
    put_photo(client, "mike.jpg", photo("Mike-Meyers.jpg"), **{"x-amz-meta-name": "Mike"})
    query = imagegen.phone_photo(GROUP, content_type)
    reply = search_photo(client, query, "?faces=all", content_type=content_type)
    assert reply.status_code == 200, reply.body
    found = [face["matchedFaces"] for face in reply.json_body["searchedFaces"]]
    assert len(found) == 3 and sorted(sum(found, [])) == ["Avril", "Mike"]
    largest = search_photo(client, query, content_type="application/octet-stream").json_body
    assert largest["faces"]["SearchedFaceBoundingBox"] == reply.json_body["searchedFaces"][0]["BoundingBox"]


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png"])
def test_jpeg_and_png_are_stored_byte_for_byte_and_download_with_accept_image_star(client, api, content_type):
    sent = photo("Lawrence2.jpg") if content_type == "image/jpeg" else imagegen.encode(imagegen.shared("Lawrence2.jpg"))
    assert put_photo(client, "k", sent, content_type).status_code == 201
    assert "originalContentType" not in client.http.get("/images/k").json_body["image"]
    for accept in ("image/*", content_type, "*/*"):  # the README's curl sends image/*
        status, stored_type, body = api.download("k", accept)
        assert status == 200, (accept, body)
        assert stored_type == content_type and body == sent


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
def test_other_image_types_are_415_with_the_list_of_accepted_types(client, api, fmt):
    body = imagegen.encode(imagegen.shared("Lawrence2.jpg"), fmt)
    for reply in (
        put_photo(client, "other", body, "application/octet-stream"),
        search_photo(client, body, content_type="application/octet-stream"),
        put_photo(client, "other", body, f"image/{fmt.lower()}"),  # refused by its Content-Type alone
    ):
        assert_error(reply, 415, "UnsupportedMediaType")
        assert all(accepted in reply.json_body["message"] for accepted in ACCEPTED), reply.json_body
    assert api.stored() == []


@pytest.mark.parametrize("size", [(10_000, 10_000), (16_000, 16_000)], ids=["100mp", "256mp"])
@pytest.mark.parametrize("content_type", list(imagegen.CONVERTED))
def test_a_bomb_of_a_converted_type_stops_at_its_header(client, api, content_type, size):
    bomb = imagegen.header_only(content_type, *size)
    assert len(bomb) < 1000
    assert_error(put_photo(client, "bomb", bomb, content_type), 413, "PayloadTooLarge")
    assert_error(search_photo(client, bomb, content_type=content_type), 413, "PayloadTooLarge")
    assert api.stored() == []


@pytest.mark.parametrize("content_type", list(imagegen.CONVERTED))
def test_a_broken_file_of_a_converted_type_is_400(client, api, content_type):
    sent = imagegen.phone_photo("Lawrence2.jpg", content_type)
    assert_error(put_photo(client, "broken", sent[: len(sent) // 2], content_type), 400, "InvalidImage")
    assert api.stored() == []


def test_the_original_type_metadata_name_is_the_apis_own(client, api):
    reply = put_photo(client, "k.jpg", photo("Lawrence2.jpg"), **{"x-amz-meta-faceprint-original-type": "image/heic"})
    assert_error(reply, 400, "BadRequest")
    assert api.stored() == []
