"""`make import`: a folder of the shared photos (and a phone's HEIC) into
the embedded stage, twice, and into the AWS wiring, whose S3 events index
what the import uploads."""

import shutil
from pathlib import Path

import pytest

from chalicelib.ops import cli
from tests.support import imagegen
from tests.support.photos import FACES_DIR, people


@pytest.fixture
def folder(tmp_path) -> Path:
    """people/<person>/<photo> for the single portraits, and a phone folder."""
    root = tmp_path / "Pictures"
    for name, who in people().items():
        if len(who) == 1:
            (root / "people" / who[0]).mkdir(parents=True, exist_ok=True)
            shutil.copy(FACES_DIR / name, root / "people" / who[0] / name)
    (root / "phone").mkdir()
    (root / "phone" / "IMG_0001.HEIC").write_bytes(imagegen.phone_photo("Keanu-Avril-Mike.jpg", "image/heic"))
    return root


def test_an_import_indexes_the_folder_then_a_second_run_nothing(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["import", str(folder), "--names-from-folders"]) == 0
    first = capsys.readouterr().out
    portraits = sum(len(who) == 1 for who in people().values())
    assert f"{portraits + 1} photo(s) under {folder}: {portraits + 1} imported" in first
    assert f"{portraits + 3} face(s) indexed, 0 failure(s)" in first
    assert cli.main(["import", str(folder), "--names-from-folders"]) == 0
    second = capsys.readouterr().out
    assert f"0 imported, {portraits + 1} unchanged since the last import, 0 face(s) indexed" in second
    assert cli.main(["check"]) == 0


def test_an_import_into_an_aws_stage_uploads_and_the_events_index(folder, monkeypatch, capsys):
    from chalicelib import wiring
    from chalicelib.core.config import Settings
    from tests.support.fake_rekognition import aws_stage

    with aws_stage(monkeypatch, "dev") as stage:
        stage.events.held = True
        assert cli.main(["import", str(folder / "phone"), "--stage", "dev"]) == 0
        assert "1 photo(s) uploaded to stage 'dev': its S3 events index them." in capsys.readouterr().out
        stage.events.deliver()
        svc = wiring.services(Settings.from_env(stage.env))
        image = svc.records.get_image("IMG_0001.HEIC")
        assert image["status"] == "indexed" and image["faceCount"] == 3
        assert image["originalContentType"] == "image/heic"
