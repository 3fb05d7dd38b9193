"""One JSON line per request and per indexed photo; debug adds the
request's headers and query, never its body nor the API key."""

import base64
import json

import pytest
from chalice.test import Client

from app import app
from tests.support.photos import photo

KEY = "key-that-must-never-be-logged"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    with Client(app, stage_name="local") as local:
        yield local


def _lines(capsys) -> tuple[str, list[dict]]:
    err = capsys.readouterr().err
    return err, [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_each_request_gets_one_json_line(client, capsys):
    client.http.get("/images/nobody.jpg")
    _, lines = _lines(capsys)
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "request" and line["method"] == "GET" and line["status"] == 404
    assert line["path"] == "/images/nobody.jpg" and line["route"] == "/images/{key}"
    assert len(line["requestId"]) == 36 and line["durationMs"] >= 0
    assert "headers" not in line


def test_an_indexed_photo_gets_its_line_with_key_faces_and_status(client, capsys):
    client.http.put("/index/jim.jpg", body=photo("Jim-Carrey.jpg"), headers={"Content-Type": "image/jpeg"})
    _, lines = _lines(capsys)
    indexed, request = lines  # the run's line comes first: the request's once the reply is known
    assert request["status"] == 201
    assert indexed["event"] == "indexed" and indexed["key"] == "jim.jpg"
    assert indexed["status"] == "indexed" and indexed["faces"] == 1 and indexed["durationMs"] > 0
    assert indexed["outcome"] == "indexed"
    assert indexed["requestId"] == request["requestId"]


def test_debug_adds_headers_and_query_but_never_the_body_or_the_key(client, capsys, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DEBUG", "1")
    monkeypatch.setenv("FACEPRINT_API_KEY", KEY)
    data = photo("Jim-Carrey.jpg")
    headers = {"Content-Type": "text/plain", "x-api-key": KEY, "x-amz-meta-name": "Jim"}
    reply = client.http.post("/search?threshold=70", body=base64.b64encode(data), headers=headers)
    assert reply.status_code == 200
    err, lines = _lines(capsys)
    (line,) = lines
    assert line["query"] == {"threshold": "70"} and line["headers"]["x-amz-meta-name"] == "Jim"
    assert "x-api-key" not in {name.lower() for name in line["headers"]}
    assert KEY not in err
    assert base64.b64encode(data)[:64].decode() not in err and data[:64].hex() not in err
