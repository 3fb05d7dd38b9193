"""The HTTP edge of the embedded stage (api/guard.py): no web page of
another site reaches the API, by a re-pointed name (DNS rebinding) or by a
cross-site request; JSON routes take JSON only; and what a client names
things with (keys, people's names and ids) and sends as JSON is refused
cleanly when it would mislead or break."""

import base64
import json
import logging
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from tests.support.imagegen import encode, shared
from tests.support.photos import photo

JPEG = {"Content-Type": "image/jpeg"}
JSON = {"Content-Type": "application/json"}
EVIL = "https://attacker.example"


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    for var in ("FACEPRINT_API_KEY", "FACEPRINT_CORS_ORIGINS", "FACEPRINT_ALLOWED_HOSTS"):
        monkeypatch.delenv(var, raising=False)
    with Client(app, stage_name="local") as local:
        yield local


@pytest.fixture
def stored(client):
    """An archive holding one photo, k.jpg (Keanu Reeves)."""
    assert client.http.put("/index/k.jpg", body=photo("Keanu-Reeves.jpg"), headers=JPEG).status_code == 201
    return client


# DNS rebinding: a page whose name now resolves to 127.0.0.1 sends its own name as Host.
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "localhost.attacker.example", "a@b"])
def test_a_host_name_the_server_does_not_answer_to_gets_421_and_reads_nothing(stored, host):
    for method, path in [("GET", "/images"), ("GET", "/images/k.jpg"), ("GET", "/people"), ("GET", "/info")]:
        reply = stored.http.request(method, path, headers={"Host": host})
        assert reply.status_code == 421, (path, reply.body)
        assert reply.json_body["error"] == "MisdirectedRequest"
        assert "FACEPRINT_ALLOWED_HOSTS" in reply.json_body["message"]
        assert b"k.jpg" not in reply.body
    assert stored.http.delete("/images/k.jpg", headers={"Host": host}).status_code == 421
    assert stored.http.get("/images/k.jpg").status_code == 200


@pytest.mark.parametrize(
    "host", ["localhost", "localhost:8000", "LOCALHOST:8000", "127.0.0.1:8000", "[::1]:8000", "app.localhost:8000"]
)
def test_loopback_names_and_addresses_are_answered(stored, host):
    assert stored.http.get("/images/k.jpg", headers={"Host": host}).status_code == 200


def test_an_ip_address_is_answered_as_no_page_can_rebind_one(stored):
    assert stored.http.get("/images/k.jpg", headers={"Host": "192.168.1.5:8000"}).status_code == 200


def test_configured_host_names_are_answered(stored, monkeypatch):
    monkeypatch.setenv("FACEPRINT_ALLOWED_HOSTS", "photos.lan, My-Laptop")
    for host in ("photos.lan:8000", "my-laptop", "PHOTOS.LAN"):
        assert stored.http.get("/images/k.jpg", headers={"Host": host}).status_code == 200
    assert stored.http.get("/images/k.jpg", headers={"Host": "other.lan"}).status_code == 421


def test_a_host_name_pattern_is_a_configuration_error(client, monkeypatch):
    monkeypatch.setenv("FACEPRINT_ALLOWED_HOSTS", "*")
    assert client.http.get("/info").status_code == 500


def test_a_cross_site_form_cannot_overwrite_a_stored_photo(stored):
    """A plain HTML form (enctype=text/plain) posting a base64 photo."""
    before = stored.http.get("/images/k.jpg").json_body
    form = base64.b64encode(photo("Jim-Carrey.jpg"))
    for headers in (
        {"Origin": EVIL, "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"},
        {"Origin": EVIL, "Content-Type": "text/plain"},
        {"Origin": "null", "Content-Type": "text/plain"},  # a sandboxed frame, a file: page
    ):
        reply = stored.http.put("/index/k.jpg", body=form, headers=headers)
        assert reply.status_code == 403 and reply.json_body["error"] == "Forbidden"
    assert stored.http.get("/images/k.jpg").json_body == before


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_a_request_another_site_sent_without_origin_is_refused(stored, site):
    """A no-cors fetch or an <img> of another site (or of another port of localhost)."""
    reply = stored.http.get("/images/k.jpg/file", headers={"Sec-Fetch-Site": site, "Accept": "image/*"})
    assert reply.status_code == 403 and reply.json_body["error"] == "Forbidden"
    assert stored.http.delete("/images/k.jpg", headers={"Sec-Fetch-Site": site}).status_code == 403
    assert stored.http.get("/images/k.jpg").status_code == 200


def test_the_servers_own_pages_and_configured_origins_pass(stored, monkeypatch):
    monkeypatch.setenv("FACEPRINT_CORS_ORIGINS", "http://localhost:3000")
    own = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000", "Sec-Fetch-Site": "same-origin"}
    assert stored.http.get("/images/k.jpg", headers=own).status_code == 200
    configured = {"Host": "localhost:8000", "Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"}
    reply = stored.http.get("/images/k.jpg", headers=configured)
    assert reply.status_code == 200 and reply.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    other_port = {"Host": "localhost:8000", "Origin": "http://localhost:4000", "Sec-Fetch-Site": "same-site"}
    assert stored.http.get("/images/k.jpg", headers=other_port).status_code == 403
    # Typed or bookmarked (none), and clients that are not browsers (no header).
    assert stored.http.get("/images/k.jpg", headers={"Sec-Fetch-Site": "none"}).status_code == 200
    assert stored.http.get("/images/k.jpg").status_code == 200


def test_another_site_may_link_to_the_console_but_not_call_the_api(client):
    linked = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.http.get("/", headers=linked).status_code == 200
    assert client.http.get("/openapi.json", headers=linked).status_code == 200
    assert client.http.get("/info", headers=linked).status_code == 403


def test_on_an_aws_stage_the_guard_stays_out_of_the_way(monkeypatch):
    from chalicelib.api import guard
    from chalicelib.core.config import Settings

    settings = Settings(stage="dev", engine="rekognition", data_dir=None)
    assert guard.refusal({"host": "abc.execute-api.us-east-1.amazonaws.com", "origin": EVIL}, settings) is None


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded", "*/*"])
def test_a_json_route_refuses_a_body_that_is_not_sent_as_json(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    reply = client.http.put("/people/keanu", body=b'{"name": "Keanu Reeves"}', headers=headers)
    assert reply.status_code == 415 and "application/json" in reply.json_body["message"]
    assert client.http.get("/people/keanu").status_code == 404
    with_charset = {"Content-Type": "application/json; charset=utf-8"}
    reply = client.http.put("/people/keanu", body=b'{"name": "Keanu Reeves"}', headers=with_charset)
    assert reply.status_code == 201


def test_json_nested_too_deep_is_a_400_with_no_traceback(client, caplog):
    with caplog.at_level(logging.DEBUG):
        for body in (b"[" * 100_000, b'{"a":' * 100_000):
            reply = client.http.put("/people/keanu", body=body, headers=JSON)
            assert reply.status_code == 400 and reply.json_body["error"] == "BadRequest"
            reply = client.http.post("/compare", body=body, headers=JSON)
            assert reply.status_code == 400
    assert "Traceback" not in caplog.text and "RecursionError" not in caplog.text


HIDDEN = {
    "right-to-left override": "\u202e",
    "left-to-right isolate": "\u2066",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "byte order mark": "\ufeff",
    "line separator": "\u2028",
    "bell": "\u0007",
    "delete": "\u007f",
}


@pytest.mark.parametrize("char", HIDDEN.values(), ids=HIDDEN.keys())
def test_names_and_keys_refuse_control_and_format_characters(client, char):
    reply = client.http.put("/people/keanu", body=json.dumps({"name": f"Keanu{char} Reeves"}), headers=JSON)
    assert reply.status_code == 400 and f"U+{ord(char):04X}" in reply.json_body["message"]
    reply = client.http.put(f"/index/{quote('evil' + char + 'gpj.exe')}", body=photo("Keanu-Reeves.jpg"), headers=JPEG)
    assert reply.status_code == 400 and f"U+{ord(char):04X}" in reply.json_body["message"]
    assert client.http.get("/images").json_body["images"] == []


def test_a_lone_surrogate_in_a_name_is_a_400(client):
    reply = client.http.put("/people/keanu", body=b'{"name": "Keanu \\ud800"}', headers=JSON)
    assert reply.status_code == 400


def test_names_in_every_script_are_accepted(client):
    for name in ("Zoë Ñandú", "山田 太郎", "محمد علي", "Ана-Мария O'Neil"):
        reply = client.http.put("/people/p", body=json.dumps({"name": name}), headers=JSON)
        assert reply.status_code in (200, 201) and reply.json_body["person"]["name"] == name


@pytest.mark.parametrize("person_id", [".", ".."])
def test_dot_person_ids_are_refused(client, person_id):
    path = f"/people/{person_id.replace('.', '%2E')}"
    reply = client.http.put(path, body=b'{"name": "Dot"}', headers=JSON)
    assert reply.status_code == 400 and reply.json_body["error"] == "BadRequest"
    assert client.http.get("/people").json_body["people"] == []


@pytest.mark.parametrize("keep", ["", "1"], ids=["stripped", "kept-on-purpose"])
def test_a_stored_photo_is_served_back_without_its_location_unless_the_stage_keeps_it(client, monkeypatch, keep):
    from tests.unit.test_location import DATESTAMP, exif_with_location

    monkeypatch.setenv("FACEPRINT_KEEP_LOCATION", keep)
    sent = encode(shared("Jim-Carrey.jpg"), "JPEG", exif=exif_with_location(), quality=90)
    assert client.http.put("/index/trip.jpg", body=sent, headers=JPEG).status_code == 201
    served = client.http.get("/images/trip.jpg/file", headers={"Accept": "image/jpeg"}).body
    assert (DATESTAMP.encode() in served) == bool(keep)
    assert (served == sent) == bool(keep)
