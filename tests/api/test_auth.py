"""The offline stage's API key (FACEPRINT_API_KEY), its CORS origins and
the local server's refusal to open a keyless API to the network."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
from chalice import Response
from chalice.test import Client

from app import app
from chalicelib.api import api_key as auth
from chalicelib.ops import serve
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
def fake_python(tmp_path):
    """`make run` with BIN pointing at a python that only says how it was
    called (make run starts chalice local through chalicelib.ops.serve)."""
    (tmp_path / "python").write_text('#!/bin/sh\necho "python $*"\n')
    (tmp_path / "python").chmod(0o755)
    return tmp_path


def _without_key(key: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "FACEPRINT_API_KEY"}
    return {**env, "FACEPRINT_API_KEY": key} if key else env


def test_make_run_starts_our_server_on_loopback_by_default(fake_python):
    run = subprocess.run(
        ["make", "--no-print-directory", "run", "STAMP=", f"BIN={fake_python}"],
        cwd=REPO,
        env=_without_key(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "-m chalicelib.ops.serve --stage local --host 127.0.0.1 " in run.stdout


def test_the_server_refuses_a_network_host_without_a_key():
    run = subprocess.run(
        [sys.executable, "-m", "chalicelib.ops.serve", "--stage", "local", "--host", "0.0.0.0", "--no-autoreload"],
        cwd=REPO,
        env=_without_key(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "FACEPRINT_API_KEY" in run.stdout
    assert "Serving on" not in run.stdout + run.stderr


def test_without_a_key_the_server_says_the_api_is_open_and_listens_on_loopback_only():
    for host in ("127.0.0.1", "localhost", "::1"):
        said, refused = serve.how_it_listens(host, {})
        assert not refused and f"the API is open to programs on this machine (listening on {host})" in said
    assert serve.how_it_listens("192.168.1.5", {})[1]


def test_with_a_key_the_server_may_listen_on_the_network():
    said, refused = serve.how_it_listens("0.0.0.0", {"FACEPRINT_API_KEY": KEY})
    assert not refused and "x-api-key" in said
