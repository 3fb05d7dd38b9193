"""Deleted faces stay deleted and erased people stay erased through the
maintenance commands, on both wirings: `make reindex`, `make
check-consistency REPAIR=1`, a restore (embedded: `make restore` of a
backup; AWS: the collection lost and rebuilt by `make reindex`), and `make
erase` / `make check-erasure` with the backups they reach."""

import json
from contextlib import contextmanager
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.core import indexing, library, people, searching
from chalicelib.core.config import Settings
from chalicelib.ops import cli, erased_files, maintenance
from tests.support.fake_rekognition import aws_stage
from tests.support.photos import photo

KEANU, GROUP = "Keanu-Reeves.jpg", "Keanu-Avril-Mike.jpg"


@contextmanager
def stage_of(stage: str, data_dir: Path, monkeypatch):
    """(services, the AWS stage or None), over an empty archive."""
    if stage == "local":
        monkeypatch.setenv("FACEPRINT_DATA_DIR", str(data_dir))
        yield wiring.services(cli.stage_settings("local")), None
        return
    with aws_stage(monkeypatch, stage) as aws:
        yield wiring.services(Settings.from_env(aws.env)), aws


def upload(svc, aws, key: str, name: str, metadata: dict) -> None:
    indexing.upload_image(svc, key, photo(name), metadata)
    if aws is not None:
        aws.events.deliver()


def keanu_of(svc, key: str = "group.jpg") -> dict:
    """Keanu's face in the photo `key`: the one his portrait finds there."""
    matches = searching.search_image(svc, photo(KEANU), 80, 10)["matches"]
    return svc.records.get_face(next(match["FaceId"] for match in matches if match["imageKey"] == key))


def keanu_found_in(svc, key: str = "group.jpg") -> bool:
    matches = searching.search_image(svc, photo(KEANU), 80, 10)["matches"]
    return any(match["imageKey"] == key for match in matches)


def lose_the_collection(svc, aws) -> None:
    """AWS's disaster of docs/deploy.md: the collection gone, made again empty."""
    collection = aws.env["FACEPRINT_COLLECTION"]
    aws.rekognition.delete_collection(CollectionId=collection)
    aws.rekognition.create_collection(CollectionId=collection)


@pytest.mark.parametrize("stage", ["local", "dev"])
def test_a_deleted_face_stays_deleted_through_reindex_repair_and_restore(stage, tmp_path, monkeypatch, capsys):
    with stage_of(stage, tmp_path / "data", monkeypatch) as (svc, aws):
        upload(svc, aws, "group.jpg", GROUP, {})
        assert keanu_found_in(svc)
        library.delete_face(svc, keanu_of(svc)["FaceId"])
        assert not keanu_found_in(svc) and len(svc.records.faces_of("group.jpg")) == 2

        assert cli.main(["reindex", "--stage", stage]) == 0
        assert not keanu_found_in(svc) and len(svc.records.faces_of("group.jpg")) == 2

        svc.engine.delete_faces([svc.records.faces_of("group.jpg")[0]["FaceId"]])  # drift: repair indexes it again
        assert cli.main(["check", "--stage", stage, "--repair"]) == 0
        assert not keanu_found_in(svc) and len(svc.records.faces_of("group.jpg")) == 2

        if aws is not None:
            lose_the_collection(svc, aws)
            assert cli.main(["reindex", "--stage", stage]) == 0
            assert maintenance.check(svc) == []
            assert not keanu_found_in(svc) and len(svc.records.faces_of("group.jpg")) == 2
            return
        assert cli.main(["backup", str(tmp_path / "backup"), "--stage", stage]) == 0
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "restored"))
    assert cli.main(["restore", str(tmp_path / "backup"), "--stage", "local"]) == 0
    restored = wiring.services(cli.stage_settings("local"))
    assert cli.main(["reindex", "--stage", "local"]) == 0
    assert not keanu_found_in(restored) and len(restored.records.faces_of("group.jpg")) == 2
    capsys.readouterr()


def keanu_archive(svc, aws) -> None:
    upload(svc, aws, "keanu.jpg", KEANU, {"person": "keanu", "name": "Keanu Reeves"})
    upload(svc, aws, "group.jpg", GROUP, {"name": "Keanu Reeves", "place": "Venice"})
    people.associate_faces(svc, "keanu", [keanu_of(svc)["FaceId"]], 0)
    assert len(svc.records.faces_of_person("keanu")) == 2


@pytest.mark.parametrize("stage", ["local", "dev"])
def test_make_erase_leaves_no_trace_that_make_check_erasure_finds(stage, tmp_path, monkeypatch, capsys):
    with stage_of(stage, tmp_path / "data", monkeypatch) as (svc, aws):
        keanu_archive(svc, aws)
        if aws is None:
            assert cli.main(["backup", str(tmp_path / "backup"), "--stage", stage]) == 0
        capsys.readouterr()
        assert cli.main(["check-erasure", "keanu", "--name", "Keanu Reeves", "--stage", stage]) == 1
        assert "trace(s) of person 'keanu'" in capsys.readouterr().out

        assert cli.main(["erase", "keanu", "--stage", stage]) == 0
        receipt = json.loads(capsys.readouterr().out)["erasure"]
        assert receipt["complete"] and receipt["removed"]["faces"] == 2
        if aws is None:
            assert receipt["backups"] == {"purged": [str((tmp_path / "backup").resolve())], "notFound": []}
            assert not any("backup" in copy["copy"] for copy in receipt["copies"])

        assert cli.main(["check-erasure", "keanu", "--name", "Keanu Reeves", "--stage", stage]) == 0, (
            capsys.readouterr()
        )
        assert not keanu_found_in(svc) and not keanu_found_in(svc, "keanu.jpg")
        assert cli.main(["reindex", "--stage", stage]) == 0
        assert not keanu_found_in(svc) and not keanu_found_in(svc, "keanu.jpg")
        if aws is not None:
            return
        assert erased_files.naming(tmp_path / "data", "Keanu Reeves") == []
        assert erased_files.naming(tmp_path / "backup", "Keanu Reeves") == []

    # The purged backup restores without him, and indexed again he stays out.
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "restored"))
    assert cli.main(["restore", str(tmp_path / "backup"), "--stage", "local"]) == 0
    assert cli.main(["reindex", "--stage", "local"]) == 0
    restored = wiring.services(cli.stage_settings("local"))
    assert not keanu_found_in(restored) and not keanu_found_in(restored, "keanu.jpg")
    assert restored.records.get_image("group.jpg")["metadata"] == {"place": "Venice"}
    assert len(restored.records.faces_of("group.jpg")) == 2


def test_a_backup_taken_before_is_purged_by_an_erasure_of_someone_deleted_since(tmp_path, monkeypatch, capsys):
    """make erase reaches the backups the archive knows: a person deleted
    (not erased) after a backup is erased from it too, and the name the
    backup still holds cleans the archive's photos of it."""
    with stage_of("local", tmp_path / "data", monkeypatch) as (svc, aws):
        keanu_archive(svc, aws)
        assert cli.main(["backup", str(tmp_path / "backup"), "--stage", "local"]) == 0
        people.delete_person(svc, "keanu")
        assert erased_files.naming(tmp_path / "backup", "Keanu Reeves") != []
        capsys.readouterr()
        assert cli.main(["erase", "keanu", "--stage", "local"]) == 0
        receipt = json.loads(capsys.readouterr().out)["erasure"]
        assert receipt["found"] == "tombstone" and receipt["removed"]["faces"] == 1  # the face his upload enrolled
        assert erased_files.naming(tmp_path / "backup", "Keanu Reeves") == []
        assert erased_files.naming(tmp_path / "data", "Keanu Reeves") == []
        assert cli.main(["check-erasure", "keanu", "--name", "Keanu Reeves", "--stage", "local"]) == 0
        assert not keanu_found_in(svc, "keanu.jpg")
    capsys.readouterr()


def test_the_archive_and_its_backups_are_their_owners_alone(tmp_path, monkeypatch):
    """Folders 0700, files 0600, whatever the umask: the data folder, the
    database, its write-ahead log, the collection's index, the photos, a
    backup and a restored archive."""
    import os

    previous = os.umask(0o022)
    try:
        with stage_of("local", tmp_path / "data", monkeypatch) as (svc, aws):
            upload(svc, aws, "keanu.jpg", KEANU, {"name": "Keanu Reeves"})
            searching.search_image(svc, photo(KEANU), 80, 10)
            svc.engine.close()  # the index snapshot
            assert cli.main(["backup", str(tmp_path / "backup"), "--stage", "local"]) == 0
        monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "restored"))
        assert cli.main(["restore", str(tmp_path / "backup"), "--stage", "local"]) == 0
    finally:
        os.umask(previous)
    for root in ("data", "backup", "restored"):
        made = [tmp_path / root, *(tmp_path / root).rglob("*")]
        names = {path.name for path in made}
        assert {"faceprint.db", "photos"} <= names, root
        if root != "backup":
            assert {"faceprint.db-wal", "faceprint.index"} <= names, (root, names)
        wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in made if p.stat().st_mode & 0o077}
        assert wrong == {}
