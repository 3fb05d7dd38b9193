"""Decompression bombs through the API (issue 22, rows 4 and 5): refused
with a JSON 413 or 422 on upload and on every search route, nothing stored,
and the server's memory and time left for real photos."""

import base64
import json

import pytest
from chalice.test import Client

from app import app
from chalicelib.core.limits import MAX_JPEG_SCANS
from tests.support import bombs

BOMBS = {
    "webp": (lambda: bombs.webp_bomb(), "image/webp", 413, "PayloadTooLarge"),
    "png-16-bit": (lambda: bombs.png16_bomb(), "image/png", 413, "PayloadTooLarge"),
    "jpeg-scans": (
        lambda: bombs.many_scans_jpeg(MAX_JPEG_SCANS * 10, 2000, 2000),
        "image/jpeg",
        422,
        "ImageTooComplex",
    ),
}


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    with Client(app, stage_name="local") as local:
        yield local


@pytest.mark.parametrize("kind", BOMBS)
def test_a_bomb_is_refused_on_upload_and_on_search(client, kind):
    make, content_type, status, error = BOMBS[kind]
    data = make()
    for method, path in [
        ("PUT", "/index/bomb"),
        ("POST", "/search"),
        ("POST", "/search?faces=all"),
        ("POST", "/search/people"),
    ]:
        reply = client.http.request(method, path, body=data, headers={"Content-Type": content_type})
        assert reply.status_code == status and reply.json_body["error"] == error, (path, reply.body[:200])
    pair = json.dumps({"source": base64.b64encode(data).decode(), "target": base64.b64encode(data).decode()})
    reply = client.http.post("/compare", body=pair, headers={"Content-Type": "application/json"})
    assert reply.status_code == status
    assert client.http.get("/images").json_body["images"] == []
