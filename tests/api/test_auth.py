"""The offline stage's API key (FACEPRINT_API_KEY), its CORS origins and
`make run`'s refusal to open a keyless API to the network."""

import os
import subprocess
from types import SimpleNamespace

import pytest
from chalice import Response
from chalice.test import Client

from app import app
from chalicelib.api import api_key as auth
from tests.support.photos import REPO, photo

KEY = "s3cret-key-for-tests"
JPEG = {"Content-Type": "image/jpeg"}


@pytest.fixture
def client(tmp_path, monkeypatch):
    """The embedded stage, where the middleware checks keys."""
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    with Client(app, stage_name="local") as local:
        yield local


@pytest.fixture
def keyed(client, monkeypatch):
    monkeypatch.setenv("FACEPRINT_API_KEY", KEY)
    return client


def test_requests_without_the_key_are_forbidden_with_a_json_error(keyed):
    for headers in ({}, {"x-api-key": "wrong"}, {"x-api-key": KEY + "x"}, {"x-api-key": ""}):
        reply = keyed.http.get("/info", headers=headers)
        assert reply.status_code == 403
        assert reply.json_body["error"] == "Forbidden" and "x-api-key" in reply.json_body["message"]


def test_the_matching_key_lets_requests_through(keyed):
    reply = keyed.http.get("/info", headers={"x-api-key": KEY})
    assert reply.status_code == 200 and reply.json_body["engine"] == "local"


def test_a_forbidden_upload_stores_nothing(keyed):
    reply = keyed.http.put("/index/keanu.jpg", body=photo("Jim-Carrey.jpg"), headers=JPEG)
    assert reply.status_code == 403
    listed = keyed.http.get("/images", headers={"x-api-key": KEY}).json_body
    assert listed["images"] == []


def test_the_console_and_the_api_document_stay_open(keyed):
    assert keyed.http.get("/").status_code == 200
    assert keyed.http.get("/console/console.js").status_code == 200
    assert keyed.http.get("/openapi.json").status_code == 200


def test_without_a_key_the_api_is_open(client, monkeypatch):
    monkeypatch.delenv("FACEPRINT_API_KEY", raising=False)
    assert client.http.get("/info").status_code == 200


def test_on_an_aws_stage_api_gateway_checks_keys_not_the_middleware(monkeypatch):
    monkeypatch.setenv("FACEPRINT_API_KEY", KEY)
    monkeypatch.setenv("FACEPRINT_ENGINE", "rekognition")
    for var in (
        "FACEPRINT_BUCKET",
        "FACEPRINT_IMAGES_TABLE",
        "FACEPRINT_FACES_TABLE",
        "FACEPRINT_PEOPLE_TABLE",
        "FACEPRINT_COLLECTION",
        "FACEPRINT_INDEX_QUEUE",
    ):
        monkeypatch.setenv(var, "x")
    event = SimpleNamespace(path="/info", headers={})
    passed = Response(body={}, status_code=200)
    assert auth.require_api_key(event, lambda e: passed) is passed


def test_cors_is_off_unless_origins_are_configured(client, monkeypatch):
    monkeypatch.delenv("FACEPRINT_CORS_ORIGINS", raising=False)
    reply = client.http.get("/info", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in reply.headers


def test_cors_allows_only_the_configured_origins(client, monkeypatch):
    monkeypatch.setenv("FACEPRINT_CORS_ORIGINS", "https://app.example, http://localhost:3000")
    allowed = client.http.get("/info", headers={"Origin": "http://localhost:3000"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
    other = client.http.get("/info", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def test_a_wildcard_cors_origin_is_refused_with_a_500_that_hides_the_setting(client, monkeypatch):
    monkeypatch.setenv("FACEPRINT_CORS_ORIGINS", "*")
    reply = client.http.get("/info")
    assert reply.status_code == 500 and "CORS" not in reply.json_body["message"]


def test_the_key_never_shows_in_the_settings_repr(monkeypatch):
    from chalicelib.core.config import Settings

    assert KEY not in repr(Settings.from_env({"FACEPRINT_API_KEY": KEY}))


@pytest.fixture
def fake_chalice(tmp_path):
    """`make run` with BIN pointing at a python that only says how it was
    called (make run starts chalice local through chalicelib.ops.serve)."""
    (tmp_path / "python").write_text('#!/bin/sh\necho "python $*"\n')
    (tmp_path / "python").chmod(0o755)
    return tmp_path


def _make_run(fake_chalice, key: str | None, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FACEPRINT_API_KEY"}
    if key:
        env["FACEPRINT_API_KEY"] = key
    return subprocess.run(
        ["make", "--no-print-directory", "run", "STAMP=", f"BIN={fake_chalice}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_make_run_without_a_key_says_the_api_is_open_and_binds_loopback(fake_chalice):
    run = _make_run(fake_chalice, None)
    assert run.returncode == 0, run.stderr
    assert "the API is open" in run.stdout and "-m chalicelib.ops.serve --stage local --host 127.0.0.1 " in run.stdout


def test_make_run_refuses_a_network_host_without_a_key(fake_chalice):
    run = _make_run(fake_chalice, None, "HOST=0.0.0.0")
    assert run.returncode != 0 and "FACEPRINT_API_KEY" in run.stdout + run.stderr
    assert "chalicelib.ops.serve" not in run.stdout


def test_make_run_with_a_key_may_listen_on_the_network(fake_chalice):
    run = _make_run(fake_chalice, KEY, "HOST=0.0.0.0")
    assert run.returncode == 0 and "--host 0.0.0.0 " in run.stdout
