"""The upload examples of the README and docs/api.md, sent by curl itself to the local server:
a form (-F), a file with no Content-Type (-T), and --data-binary without
-H (which curl sends as a form-encoded body)."""

import json
import subprocess

import pytest

from tests.support.live_server import live_server
from tests.support.photos import photo_path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("curl") / "data") as running:
        yield running


def curl(*args: str) -> tuple[int, dict]:
    done = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=120, check=True
    )
    body, status = done.stdout.rsplit("\n", 1)
    return int(status), json.loads(body)


def test_curl_uploads_a_photo_in_each_way_the_readme_shows(server):
    assert curl("-F", f"file=@{photo_path('obama.jpg')}", f"{server.url}/index/obama.jpg")[0] == 201
    assert curl("-T", str(photo_path("obama2.jpg")), f"{server.url}/index/obama2.jpg")[0] == 201
    assert curl("--data-binary", f"@{photo_path('biden.jpg')}", f"{server.url}/index/biden.jpg")[0] == 201
    for key in ("obama.jpg", "obama2.jpg", "biden.jpg"):
        _, body = curl(f"{server.url}/images/{key}")
        assert body["image"]["faceCount"] == 1, body
    status, found = curl("-F", f"image=@{photo_path('obama3.jpg')}", f"{server.url}/search")
    assert status == 200 and {match["imageKey"] for match in found["matches"]} == {"obama.jpg", "obama2.jpg"}
    status, found = curl("--data-binary", f"@{photo_path('obama3.jpg')}", f"{server.url}/search")
    assert status == 200 and {match["imageKey"] for match in found["matches"]} == {"obama.jpg", "obama2.jpg"}
    status, refused = curl("-F", "note=no photo", f"{server.url}/search")
    assert status == 400 and "curl -F file=@photo.jpg" in refused["message"]
