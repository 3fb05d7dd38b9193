"""One JSON line per request and per indexed photo, with route templates
and never a photo key, a person id, a name, metadata or a query string;
debug adds the request's headers (not the metadata) and its query's
parameter names, never its body nor the API key. The audit log, apart,
says who asked and which ids came back."""

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
    assert line["route"] == "/images/{key}" and "nobody" not in json.dumps(line)
    assert len(line["requestId"]) == 36 and line["durationMs"] >= 0
    assert "headers" not in line


def test_an_indexed_photo_gets_its_line_with_faces_and_status_but_not_its_key(client, capsys):
    client.http.put("/index/jim.jpg", body=photo("Jim-Carrey.jpg"), headers={"Content-Type": "image/jpeg"})
    err, lines = _lines(capsys)
    indexed, request = lines  # the run's line comes first: the request's once the reply is known
    assert request["status"] == 201 and request["route"] == "/index/{filename}"
    assert indexed["event"] == "indexed" and "jim" not in err
    assert indexed["status"] == "indexed" and indexed["faces"] == 1 and indexed["durationMs"] > 0
    assert indexed["outcome"] == "indexed"
    assert indexed["requestId"] == request["requestId"]


def test_debug_adds_headers_and_query_names_but_never_the_body_the_key_or_metadata(client, capsys, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DEBUG", "1")
    monkeypatch.setenv("FACEPRINT_API_KEY", KEY)
    data = photo("Jim-Carrey.jpg")
    headers = {"Content-Type": "text/plain", "x-api-key": KEY, "x-amz-meta-name": "Jim Carrey"}
    reply = client.http.put("/index/jim-carrey.jpg?threshold=70", body=base64.b64encode(data), headers=headers)
    assert reply.status_code == 201
    err, lines = _lines(capsys)
    line = lines[-1]
    assert line["query"] == ["threshold"] and line["headers"]["content-type"] == "text/plain"
    assert "x-api-key" not in {name.lower() for name in line["headers"]}
    assert KEY not in err and "Carrey" not in err and "70" not in json.dumps(line["query"])
    assert base64.b64encode(data)[:64].decode() not in err and data[:64].hex() not in err


def test_no_line_names_a_person_or_a_photo(client, capsys):
    put = client.http.put(
        "/people/keanu", body='{"name": "Keanu Reeves"}', headers={"Content-Type": "application/json"}
    )
    assert put.status_code == 201
    client.http.get("/faces?person=keanu")
    client.http.get("/people/keanu")
    client.http.post("/people/keanu/erase")
    err, lines = _lines(capsys)
    assert [line["route"] for line in lines] == [
        "/people/{person_id}",
        "/faces",
        "/people/{person_id}",
        "/people/{person_id}/erase",
    ]
    assert "keanu" not in err.lower()


def audit_lines(tmp_path) -> list[dict]:
    return [json.loads(line) for path in sorted((tmp_path / "data" / "audit").glob("*.jsonl")) for line in path.open()]


def test_the_audit_log_says_who_asked_which_route_and_whose_ids_came_back(client, tmp_path, monkeypatch):
    keanu = client.http.put("/index/keanu.jpg", body=photo("Keanu-Reeves.jpg"), headers={"Content-Type": "image/jpeg"})
    face_id = keanu.json_body["faces"][0]["FaceId"]
    client.http.post("/search", body=photo("Keanu-Reeves.jpg"), headers={"Content-Type": "image/jpeg"})
    monkeypatch.setenv("FACEPRINT_API_KEY", KEY)
    client.http.get("/images/keanu.jpg", headers={"x-api-key": KEY})
    client.http.get("/console/app.js")  # the console's files are not audited
    upload, search, read = audit_lines(tmp_path)
    assert (upload["who"], upload["method"], upload["route"], upload["status"]) == (
        "local",
        "PUT",
        "/index/{filename}",
        201,
    )
    assert upload["asked"] == {"filename": "keanu.jpg"} and upload["returned"]["faces"] == [face_id]
    assert search["route"] == "/search" and search["returned"] == {"faces": [face_id], "images": ["keanu.jpg"]}
    assert read["who"].startswith("local-key:") and KEY not in json.dumps(read)
    assert all(line["at"] and line["requestId"] for line in (upload, search, read))
    assert oct((tmp_path / "data" / "audit").stat().st_mode & 0o777) == "0o700"


def test_the_audit_log_keeps_its_days_for_its_retention(tmp_path):
    from chalicelib.embedded.audit import FileAuditLog

    folder = tmp_path / "audit"
    folder.mkdir()
    (folder / "2020-01-01.jsonl").write_text("{}\n")
    FileAuditLog(folder, retention_days=90).write({"route": "/x"})
    assert [path.name for path in folder.iterdir()] != [] and not (folder / "2020-01-01.jsonl").exists()
    (today,) = list(folder.iterdir())
    assert oct(today.stat().st_mode & 0o777) == "0o600"
