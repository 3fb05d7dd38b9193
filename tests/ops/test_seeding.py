"""`make seed` and `make unseed` on the real embedded stack: synthetic faces
are counted, recognisable as such and consistent with no photo behind
them; their photo download says why there is none; a running server
searches them from its next search and forgets them after `unseed`; an AWS
stage refuses."""

from urllib.parse import quote

import pytest

from chalicelib import wiring
from chalicelib.core import indexing, searching, synthetic
from chalicelib.core.config import Settings
from chalicelib.ops import cli, maintenance, seeding
from tests.support.live_server import live_server
from tests.support.photos import photo
from tests.support.stages import serving

N = 2000
JPEG = {"Content-Type": "image/jpeg"}


@pytest.fixture
def archive(tmp_path, monkeypatch):
    """The local stage's archive (as `make run` and `make seed` use it) with one real photo."""
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    svc = wiring.services(cli.stage_settings("local"))
    indexing.upload_image(svc, "Keanu-Reeves.jpg", photo("Keanu-Reeves.jpg"), {"name": "Keanu"})
    return svc


def synthetic_keys(svc) -> list[str]:
    return [s.key for s in maintenance._all(svc.records.list_image_states) if synthetic.is_synthetic(s.key, s.etag)]


def test_seeded_faces_are_counted_recognisable_consistent_and_unseeded(archive, capsys):
    assert cli.main(["seed", str(N)]) == 0
    assert f"added {N:,} synthetic faces" in capsys.readouterr().out
    assert archive.engine.describe()["faces"] == N + 1 and archive.records.count_images() == N + 1
    assert maintenance.check(archive) == []
    keys = synthetic_keys(archive)
    assert len(keys) == N and all(key.startswith("synthetic/") for key in keys)
    image = archive.records.get_image(keys[0])
    assert image["metadata"]["synthetic"] == "true" and image["metadata"]["name"].startswith("Synthetic person")
    (face,) = archive.records.faces_of(keys[0])
    assert face["ExternalImageId"].startswith("synthetic:") and face["imageKey"] == keys[0]
    assert archive.photos.head(keys[0]) is None
    # The real face is still the best match of its own photo.
    found = searching.search_image(archive, photo("Keanu-Reeves.jpg"), 80, 10)
    assert found["matches"][0]["imageKey"] == "Keanu-Reeves.jpg"

    assert cli.main(["seed", "500"]) == 0  # a second run adds to the first
    assert archive.engine.describe()["faces"] == N + 501 and maintenance.check(archive) == []
    assert cli.main(["unseed"]) == 0
    out, err = capsys.readouterr()
    assert f"removed {N + 500:,} synthetic faces" in out
    # Its progress counts from 0 towards every synthetic face there is.
    removing = [line for line in err.splitlines() if "synthetic faces removed" in line]
    assert removing[0].startswith(f"[{'.' * 30}] 0/{N + 500:,} synthetic faces removed")
    assert archive.engine.describe()["faces"] == 1 and archive.records.count_images() == 1
    assert synthetic_keys(archive) == [] and maintenance.check(archive) == []


def test_a_synthetic_image_has_no_photo_to_download_and_says_so(tmp_path, monkeypatch):
    with serving("local", tmp_path / "data", monkeypatch) as api:
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(tmp_path / "data")}))
        seeding.seed(svc, 50)
        key = synthetic_keys(svc)[0]
        reply = api.client.http.get(f"/images/{quote(key, safe='')}/file", headers={"Accept": "image/*"})
        assert reply.status_code == 404
        assert reply.json_body["error"] == "NotFound" and "synthetic image" in reply.json_body["message"]
        assert api.client.http.get(f"/images/{quote(key, safe='')}").json_body["image"]["faceCount"] == 1


def test_a_running_server_searches_seeded_faces_at_its_next_search_and_forgets_unseeded_ones(tmp_path):
    data = tmp_path / "data"
    with live_server(data) as server:
        assert server.request("PUT", "/index/Keanu-Reeves.jpg", photo("Keanu-Reeves.jpg"), JPEG)[0] == 201

        def everyone() -> list[str]:  # threshold 0: every face in the collection is a match
            status, body, _ = server.request("POST", "/search?threshold=0&max=4096", photo("Keanu-Reeves.jpg"), JPEG)
            assert status == 200, body
            return [match["imageKey"] for match in body["matches"]]

        assert everyone() == ["Keanu-Reeves.jpg"]
        svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(data)}))  # another process than the server
        seeding.seed(svc, N)
        found = everyone()
        assert len(found) == N + 1 and found[0] == "Keanu-Reeves.jpg"
        assert sum(key.startswith(synthetic.KEY_PREFIX) for key in found) == N
        assert server.request("GET", "/info")[1]["faces"] == N + 1
        seeding.unseed(svc)
        assert everyone() == ["Keanu-Reeves.jpg"]


def test_seeding_an_aws_stage_is_refused_with_the_reason(monkeypatch, capsys):
    from tests.support.fake_rekognition import aws_stage

    with aws_stage(monkeypatch, "dev"):
        assert cli.main(["seed", "10", "--stage", "dev"]) == 2
        assert "embedded engine's archive only" in capsys.readouterr().err


@pytest.mark.parametrize("faces", ["0", "-5", "many"])
def test_seed_wants_a_whole_number_of_faces(faces, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["seed", faces])
    assert exit_.value.code == 2 and "give a whole number of faces" in capsys.readouterr().err
