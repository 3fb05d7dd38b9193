"""Uploads the way other tools send them, on both wirings: a multipart
form (curl -F, Postman's form-data, most face APIs' clients), no
Content-Type (curl -T), a form-encoded body that is the photo or its base64
(curl --data-binary without -H), beside the photo's own type and base64 as
text/plain. Another site's form is still refused, and so is a form with no
photo in it; /compare says which image is not base64."""

import base64
import hashlib
import json
from urllib.parse import quote

import pytest
from urllib3.filepost import encode_multipart_formdata

from chalicelib.core import limits
from tests.api.test_api_contract import assert_error
from tests.support.photos import photo
from tests.support.stages import serving

PORTRAIT, LATER = "obama.jpg", "obama2.jpg"  # 2012 and 2009
FORM = "application/x-www-form-urlencoded"


def multipart(*fields: tuple[str, tuple[str, bytes] | str]) -> tuple[bytes, str]:
    """A multipart/form-data body (urllib3's encoder, as requests sends it) and its Content-Type."""
    return encode_multipart_formdata(list(fields))


def _forms(data: bytes) -> dict[str, tuple[bytes, str | None]]:
    """The photo `data` as each client sends it: body, Content-Type (None: no header)."""
    text = base64.b64encode(data)
    return {
        "its own type": (data, "image/jpeg"),
        "octet-stream": (data, "application/octet-stream"),
        "base64 as text/plain": (text, "text/plain"),
        "curl -F file=@photo.jpg": multipart(("file", ("photo.jpg", data, "image/jpeg"))),
        "a form's 'image' part after a text field": multipart(("note", "hi"), ("image", ("p.jpg", data))),
        "the form's first file part": multipart(("note", "hi"), ("upload", ("p.jpg", data)), ("x", ("y", b"z"))),
        "curl -T (no Content-Type)": (data, None),
        "base64 with no Content-Type": (text, None),
        "curl --data-binary without -H": (data, FORM),
        "base64 by curl --data-binary without -H": (text, FORM),
        "a form field 'file' holding the base64": (b"name=x&file=" + quote(text).encode(), FORM),
        "a form field's base64 with its + unencoded": (b"file=" + text, FORM),
    }


def _send(client, method: str, path: str, body: bytes, content_type: str | None):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.http.request(method, path, body=body, headers=headers)


@pytest.mark.parametrize("form", list(_forms(b"")))
def test_a_photo_is_indexed_and_searched_whichever_way_a_client_sends_it(module_api, form):
    client = module_api.client
    body, content_type = _forms(photo(PORTRAIT))[form]
    key = f"sent-{abs(hash(form))}.jpg"
    reply = _send(client, "PUT", f"/index/{key}", body, content_type)
    assert reply.status_code == 201, reply.body
    image = client.http.get(f"/images/{key}").json_body["image"]
    assert image["status"] == "indexed" and image["faceCount"] == 1
    assert image["etag"].strip('"') == hashlib.md5(photo(PORTRAIT)).hexdigest()  # the photo, not the form around it
    body, content_type = _forms(photo(LATER))[form]
    found = _send(client, "POST", f"/search?max={limits.MAX_MATCHES}", body, content_type)
    assert found.status_code == 200, found.body
    assert key in {match["imageKey"] for match in found.json_body["matches"]}
    assert _send(client, "POST", "/search/people", body, content_type).status_code == 200


def test_a_form_without_a_photo_or_not_well_formed_is_a_400_and_stores_nothing(api):
    client = api.client
    body, content_type = multipart(("note", "no file here"))
    assert_error(_send(client, "PUT", "/index/f.jpg", body, content_type), 400, "BadRequest")
    body, _ = multipart(("file", ("p.jpg", photo(PORTRAIT))))
    assert_error(_send(client, "PUT", "/index/f.jpg", body, "multipart/form-data"), 400, "BadRequest")  # no boundary
    body, content_type = multipart(("file", ("p.jpg", photo(PORTRAIT))))
    cut = _send(client, "PUT", "/index/f.jpg", body[: len(body) // 2], content_type)
    assert_error(cut, 400, "BadRequest")
    many = multipart(*[(f"f{n}", "x") for n in range(40)])
    assert_error(_send(client, "PUT", "/index/f.jpg", *many), 400, "BadRequest")
    assert client.http.get("/images/f.jpg").status_code == 404


@pytest.mark.parametrize(
    "page",
    [{"Origin": "https://elsewhere.example"}, {"Sec-Fetch-Site": "cross-site"}],
    ids=["with its Origin", "marked cross-site"],
)
def test_another_sites_form_is_refused_on_the_local_server(tmp_path, monkeypatch, page):
    """A form, or a body with no Content-Type, is a request an HTML page of
    any site can make without asking first: the edge guard refuses it. (On
    AWS the API key, which no page holds, keeps them out.)"""
    with serving("local", tmp_path / "data", monkeypatch) as api:
        _refused_from_another_site(api, page)


def _refused_from_another_site(api, page: dict) -> None:
    body, content_type = multipart(("file", ("photo.jpg", photo(PORTRAIT), "image/jpeg")))
    for sent, kind in ((body, content_type), (photo(PORTRAIT), FORM), (base64.b64encode(photo(PORTRAIT)), None)):
        headers = {**page, **({"Content-Type": kind} if kind else {})}
        reply = api.client.http.post("/index/evil.jpg", body=sent, headers=headers)
        assert_error(reply, 403, "Forbidden")
    assert api.stored() == []


@pytest.mark.parametrize("side", ["source", "target"])
def test_compare_with_an_image_that_is_not_base64_is_a_400_naming_it(client, side):
    good = base64.b64encode(photo(PORTRAIT)).decode()
    body = {"source": good, "target": good, side: "not base64 at all!"}
    reply = client.http.post("/compare", body=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_error(reply, 400, "InvalidImage")
    assert f"The {side} image is not base64" in reply.json_body["message"]
