"""`make import`: a folder of the shared photos (and a phone's HEIC) into
the embedded stage, twice, and into the AWS wiring, whose S3 events index
what the import uploads."""

import shutil
from pathlib import Path

import pytest

from chalicelib.ops import cli, importer
from tests.support import imagegen
from tests.support.photos import people, photo, photo_path


@pytest.fixture
def folder(tmp_path) -> Path:
    """people/<person>/<photo> for the single portraits, and a phone folder."""
    root = tmp_path / "Pictures"
    for name, who in people().items():
        if len(who) == 1:
            (root / "people" / who[0]).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo_path(name), root / "people" / who[0] / name)
    (root / "phone").mkdir()
    (root / "phone" / "IMG_0001.HEIC").write_bytes(imagegen.phone_photo("Keanu-Avril-Mike.jpg", "image/heic"))
    return root


def test_an_import_indexes_the_folder_then_a_second_run_nothing(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    assert cli.main(["import", str(folder), "--names-from-folders"]) == 0
    first = capsys.readouterr().out
    portraits = sum(len(who) == 1 for who in people().values())
    assert f"{portraits + 1} photo(s) under {folder}: {portraits + 1} imported" in first
    assert f"{portraits + 3} face(s) indexed, 0 refused, 0 failed" in first
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
        # The import watches the indexing; the bucket's events arrive while it waits.
        monkeypatch.setattr(importer, "_pause", lambda seconds: stage.events.deliver())
        assert cli.main(["import", str(folder / "phone"), "--stage", "dev"]) == 0
        out = capsys.readouterr().out
        assert "1 photo(s) of this import are pending in stage 'dev': its S3 events index them." in out
        assert "Indexed: 1 photo(s) with 3 face(s), 0 without a face, 0 refused, 0 failed" in out
        svc = wiring.services(Settings.from_env(stage.env))
        image = svc.records.get_image("IMG_0001.HEIC")
        assert image["status"] == "indexed" and image["faceCount"] == 3
        assert image["originalContentType"] == "image/heic"


def test_the_summary_lists_what_was_skipped_and_refused_and_the_run_still_succeeds(
    folder, tmp_path, monkeypatch, capsys
):
    """A GIF is not a photo the API takes, a truncated JPEG is refused as it
    is: both listed with why, and the exit status says the import did all
    it could (0)."""
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    (folder / "phone" / "party.gif").write_bytes(b"GIF89a" + bytes(64))
    (folder / "phone" / "cut.jpg").write_bytes(photo("Keanu-Reeves.jpg")[:2000])
    assert cli.main(["import", str(folder / "phone")]) == 0
    out = capsys.readouterr().out
    assert "2 photo(s) under" in out and "1 imported" in out and "1 refused, 0 failed" in out
    assert "1 file(s) skipped, not photos:\n  party.gif: GIF is not a photo type the API takes" in out
    assert "1 photo(s) refused as they are (fix the file to import it):\n  cut.jpg: " in out


def test_an_import_that_could_not_run_exits_2(tmp_path, capsys):
    assert cli.main(["import", str(tmp_path / "nowhere")]) == 2
    assert "No folder" in capsys.readouterr().err
