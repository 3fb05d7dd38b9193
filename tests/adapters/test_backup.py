"""The backup folder's mechanics on a real SQLite archive and photo files
(no faces needed): a photo version is copied once, a photo no longer
recorded leaves the next backup, an interrupted backup leaves the previous
one whole, and a restore goes only into an empty data folder."""

import json

import pytest

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.records import (
    INDEXED,
    PENDING,
    RUN_GRACE_SECONDS,
    attempt_mark,
    image_record,
    iso_after,
    now,
)
from chalicelib.embedded.database import Database
from chalicelib.embedded.photos import FilePhotoStore
from chalicelib.embedded.records import SqliteRecordStore
from chalicelib.ops import backup
from chalicelib.ops.memory import photo_of


class Archive:
    """The embedded stage's records and photos in a data folder."""

    def __init__(self, data_dir) -> None:
        self.records = SqliteRecordStore(Database(data_dir / "faceprint.db"))
        self.photos = FilePhotoStore(data_dir / "photos")

    def put(self, key: str, data: bytes, name: str = "") -> None:
        stored = self.photos.put(key, data, "image/png", {"name": name} if name else {})
        current = self.records.get_image(key)
        assert self.records.put_image(image_record(stored, INDEXED), current and current["revision"]) is not None

    def delete(self, key: str) -> None:
        self.photos.delete(key)
        self.records.remove_image(key)


@pytest.fixture
def archive(tmp_path) -> Archive:
    archive = Archive(tmp_path / "data")
    for n in range(3):
        archive.put(f"album/{n}.png", photo_of(f"person {n}"), name=f"Person {n}")
    return archive


def test_a_backup_restores_every_photo_and_record(archive, tmp_path):
    report = backup.backup(tmp_path / "data", tmp_path / "backup")
    assert (report.images, report.photos, report.copied, report.missed) == (3, 3, 3, [])
    assert json.loads((tmp_path / "backup" / "backup.json").read_text())["images"] == 3
    assert backup.restore_files(tmp_path / "backup", tmp_path / "restored") == 3
    restored = Archive(tmp_path / "restored")
    for n in range(3):
        key = f"album/{n}.png"
        assert restored.photos.read(key) == archive.photos.read(key)
        assert restored.photos.head(key) == archive.photos.head(key)  # etag, type, metadata, sequencer
        assert restored.records.get_image(key) == archive.records.get_image(key)


def test_a_second_backup_copies_only_new_photos_and_drops_deleted_ones(archive, tmp_path):
    backup.backup(tmp_path / "data", tmp_path / "backup")
    again = backup.backup(tmp_path / "data", tmp_path / "backup")
    assert (again.copied, again.copied_bytes, again.removed) == (0, 0, 0)
    archive.put("album/new.png", photo_of("someone new"))
    archive.put("album/0.png", photo_of("person 0, again"))  # replaced: a new version
    archive.delete("album/1.png")
    third = backup.backup(tmp_path / "data", tmp_path / "backup")
    assert (third.images, third.photos, third.copied, third.removed) == (3, 3, 2, 2)
    assert len(list((tmp_path / "backup" / "photos").glob("*.json"))) == 3
    backup.restore_files(tmp_path / "backup", tmp_path / "restored")
    restored = Archive(tmp_path / "restored")
    assert restored.photos.read("album/0.png") == photo_of("person 0, again")
    assert restored.photos.head("album/1.png") is None and restored.records.get_image("album/1.png") is None


def test_an_interrupted_backup_leaves_the_previous_one_whole(archive, tmp_path):
    backup.backup(tmp_path / "data", tmp_path / "backup")
    archive.delete("album/2.png")
    archive.put("album/3.png", photo_of("person 3"))

    def interrupt(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backup.backup(tmp_path / "data", tmp_path / "backup", on_photo=interrupt)
    backup.restore_files(tmp_path / "backup", tmp_path / "restored")
    restored = Archive(tmp_path / "restored")
    assert restored.photos.read("album/2.png") == photo_of("person 2")  # the earlier backup's, whole
    assert restored.records.get_image("album/3.png") is None


def test_a_photo_replaced_while_it_is_read_is_never_copied_half_old_half_new(archive, tmp_path, monkeypatch):
    """The photo store writes a photo's bytes and its description as two
    files: a copy that finds them disagreeing reads both again."""
    original = backup._copy_photo
    replaced = []

    def replace_once(live, photos, name, etag, copied):
        if not replaced:
            replaced.append(name)
            key = json.loads((live / f"{name}.json").read_text())["key"]
            (live / name).write_bytes(photo_of("halfway"))  # bytes of another version, description not yet
            result = original(live, photos, name, etag, copied)
            archive.put(key, photo_of("halfway"))
            return result
        return original(live, photos, name, etag, copied)

    monkeypatch.setattr(backup, "_copy_photo", replace_once)
    report = backup.backup(tmp_path / "data", tmp_path / "backup")
    assert report.missed == []
    backup.restore_files(tmp_path / "backup", tmp_path / "restored")
    restored = Archive(tmp_path / "restored")
    for image in restored.records.list_images(10).items:
        assert restored.photos.head(image["key"]).etag == image["etag"]


def test_restore_goes_only_into_an_empty_data_folder(archive, tmp_path):
    backup.backup(tmp_path / "data", tmp_path / "backup")
    with pytest.raises(ConfigurationError, match="already holds an archive"):
        backup.restore_files(tmp_path / "backup", tmp_path / "data")
    with pytest.raises(ConfigurationError, match="holds no backup"):
        backup.restore_files(tmp_path / "nothing", tmp_path / "restored")
    with pytest.raises(ConfigurationError, match="outside the data folder"):
        backup.backup(tmp_path / "data", tmp_path / "data" / "backup")
    with pytest.raises(ConfigurationError, match="No archive"):
        backup.backup(tmp_path / "nowhere", tmp_path / "backup")


def test_a_backup_into_a_folder_it_may_not_write_says_so_in_a_line(archive, tmp_path, monkeypatch, capsys):
    from chalicelib.ops import cli

    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "taken").write_text("a file, not a folder")
    assert cli.main(["backup", str(tmp_path / "taken" / "backup")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Stopped: Not a directory") and "Traceback" not in err


def test_a_restored_archive_has_no_attempt_under_way(archive, tmp_path):
    """Issue 25, item 5, at the files' level (tests/ops/test_backup_in_flight.py
    has it with a real run): the backup caught an attempt under way, marked
    by this very process, alive. Restored, nothing is marked under way and
    the pending photo is due to the re-drive at once."""
    current = archive.records.get_image("album/0.png")
    mark = attempt_mark(now())
    marked = {**current, "status": PENDING, "running": [mark], "retryAt": iso_after(now(), RUN_GRACE_SECONDS)}
    assert archive.records.put_image(marked, current["revision"]) is not None
    backup.backup(tmp_path / "data", tmp_path / "backup")
    backup.restore_files(tmp_path / "backup", tmp_path / "restored")
    restored = Archive(tmp_path / "restored")
    image = restored.records.get_image("album/0.png")
    assert "running" not in image and image["status"] == PENDING
    assert restored.records.list_pending(now(), 10) == ["album/0.png"]
    assert archive.records.get_image("album/0.png")["running"] == [mark]  # the original is the original's
