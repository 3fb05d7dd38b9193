"""`make backup` of a running server while clients upload, replace and
delete photos, then `make restore` into an empty folder: the restored
archive checks clean, and holds every photo, face, person and name that
was there before the backup began and was not touched during it."""

import json
import os
import random
import subprocess
import sys
import threading
import time

from tests.support.live_server import live_server
from tests.support.photos import REPO, photo

JPEG = {"Content-Type": "image/jpeg"}
STEADY = {"keanu.jpg": "Keanu-Reeves.jpg", "avril.jpg": "Avril-Lavigne.jpg", "group.jpg": "Keanu-Avril-Mike.jpg"}
CHURN = ["Lawrence2.jpg", "Jim-Carrey.jpg", "Mike-Meyers.jpg", "no-face.jpg"]
CLIENTS = 3
LOAD_SECONDS = 25


def _cli(*args: str, data_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chalicelib.ops.cli", *args],
        cwd=REPO,
        env={**os.environ, "FACEPRINT_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_backup_taken_under_load_restores_to_a_clean_archive_with_everything_it_held(tmp_path):
    live, restored, folder = tmp_path / "live", tmp_path / "restored", tmp_path / "backup"
    with live_server(live) as server:
        # Before the backup: named photos, a person with two faces, an earlier backup to build on.
        for key, name in STEADY.items():
            status, body, _ = server.request(
                "PUT", f"/index/{key}", photo(name), {**JPEG, "x-amz-meta-name": name.removesuffix(".jpg")}
            )
            assert status == 201 and body["image"]["status"] == "indexed"
        keanu = [server.request("GET", f"/images/{key}")[1]["faces"] for key in ("keanu.jpg", "group.jpg")]
        keanu_faces = [keanu[0][0]["FaceId"], max(keanu[1], key=lambda f: f["BoundingBox"]["Left"])["FaceId"]]
        status, _, _ = server.request(
            "PUT", "/people/keanu", b'{"name": "Keanu Reeves"}', {"Content-Type": "application/json"}
        )
        assert status == 201
        status, body, _ = server.request(
            "POST",
            "/people/keanu/faces",
            json.dumps({"faceIds": keanu_faces, "threshold": 0}).encode(),
            {"Content-Type": "application/json"},
        )
        assert status == 200 and len(body["associatedFaces"]) == 2, body
        first = _cli("backup", str(folder), data_dir=live)
        assert first.returncode == 0, first.stderr

        stop, errors, done = threading.Event(), [], []

        def churn(client: int) -> None:
            rng = random.Random(client)
            while not stop.is_set():
                key = f"churn-{client}-{rng.randrange(4)}.jpg"
                if rng.random() < 0.35:
                    status, body, _ = server.request("DELETE", f"/images/{key}")
                    ok = status in (200, 404)
                else:
                    status, body, _ = server.request("PUT", f"/index/{key}", photo(rng.choice(CHURN)), JPEG)
                    ok = status == 201
                if not ok:
                    errors.append((key, status, body))
                done.append(key)

        clients = [threading.Thread(target=churn, args=(n,)) for n in range(CLIENTS)]
        for thread in clients:
            thread.start()
        try:
            time.sleep(LOAD_SECONDS / 2)
            during = _cli("backup", str(folder), data_dir=live)
            time.sleep(LOAD_SECONDS / 2)
        finally:
            stop.set()
            for thread in clients:
                thread.join(120)
        assert during.returncode == 0, during.stderr
        assert not errors, errors[:3]
        assert len(done) > 10  # the load did run while the backup was taken
        search = server.request("POST", "/search", photo("Keanu-Reeves.jpg"), JPEG)
        assert search[0] == 200

    manifest = json.loads((folder / "backup.json").read_text())
    assert manifest["copied"] < manifest["photos"]  # the second backup copied only what was new
    done = _cli("restore", str(folder), data_dir=restored)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 disagreement(s) in stage 'local'" in done.stdout
    check = _cli("check", data_dir=restored)
    assert check.returncode == 0 and "0 disagreement(s)" in check.stdout, check.stdout

    with live_server(restored) as server:
        for key, name in STEADY.items():
            status, body, _ = server.request("GET", f"/images/{key}")
            assert status == 200 and body["image"]["metadata"] == {"name": name.removesuffix(".jpg")}
            assert body["image"]["faceCount"] == len(body["faces"]) > 0
            status, data, _ = server.request("GET", f"/images/{key}/file", headers={"Accept": "image/*"})
            assert status == 200 and data == photo(name)
        status, body, _ = server.request("GET", "/people/keanu")
        assert status == 200 and body["person"]["name"] == "Keanu Reeves" and body["person"]["faceCount"] == 2
        assert sorted(face["FaceId"] for face in body["faces"]) == sorted(keanu_faces)
        status, body, _ = server.request("POST", "/search/people", photo("Keanu-Reeves.jpg"), JPEG)
        assert status == 200 and body["people"][0]["personId"] == "keanu"
        # Every churned photo the restore kept is whole: stored, recorded, searchable by its faces.
        status, body, _ = server.request("GET", "/images?limit=1000")
        for image in body["images"]:
            assert image["status"] in ("indexed", "no_faces"), image
