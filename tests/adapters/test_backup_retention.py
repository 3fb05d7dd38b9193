"""How long backups live (docs/privacy.md): the archive remembers where it
was backed up, a `make backup` deletes the folders not renewed for
FACEPRINT_BACKUP_KEEP_DAYS, a later backup carries a photo's new metadata,
and the folders are their owner's alone."""

import json
import os

from chalicelib.core.records import iso_after, now
from chalicelib.ops import backup
from chalicelib.ops.memory import photo_of
from tests.adapters.test_backup import Archive


def test_a_backup_is_remembered_and_pruned_once_older_than_its_retention(tmp_path):
    archive = Archive(tmp_path / "data")
    archive.put("a.png", photo_of("ada"), name="Ada")
    backup.backup(tmp_path / "data", tmp_path / "old")
    backup.backup(tmp_path / "data", tmp_path / "new")
    (tmp_path / "kept-by-hand").mkdir()
    listed = backup.registered_backups(tmp_path / "data")
    assert [entry["folder"] for entry in listed] == [str(tmp_path / "new"), str(tmp_path / "old")]

    assert backup.prune(tmp_path / "data", keep_days=30) == []  # both are young
    later = iso_after(now(), 31 * 86400)
    registry = tmp_path / "data" / backup.REGISTRY
    entries = json.loads(registry.read_text())["backups"]
    entries[1]["takenAt"] = "2020-01-01T00:00:00.000+00:00"  # the old one, as if taken long ago
    registry.write_text(json.dumps({"backups": entries}))
    assert backup.prune(tmp_path / "data", keep_days=30) == [str(tmp_path / "old")]
    assert not (tmp_path / "old").exists() and (tmp_path / "new").is_dir()
    assert backup.prune(tmp_path / "data", keep_days=0, moment=later) == []  # 0: keep them all
    assert (tmp_path / "kept-by-hand").is_dir()


def test_a_folder_changed_by_hand_is_only_forgotten(tmp_path):
    archive = Archive(tmp_path / "data")
    archive.put("a.png", photo_of("ada"))
    backup.backup(tmp_path / "data", tmp_path / "old")
    (tmp_path / "old" / "my-notes.txt").write_text("mine")
    assert backup.prune(tmp_path / "data", keep_days=1, moment=iso_after(now(), 2 * 86400)) == []
    assert (tmp_path / "old" / "my-notes.txt").exists() and backup.registered_backups(tmp_path / "data") == []


def test_a_later_backup_carries_a_photos_new_metadata(tmp_path):
    archive = Archive(tmp_path / "data")
    archive.put("a.png", photo_of("ada"), name="Ada Lovelace")
    backup.backup(tmp_path / "data", tmp_path / "backup")
    stored = archive.photos.head("a.png")
    archive.photos.replace_metadata("a.png", stored.etag, {})
    backup.backup(tmp_path / "data", tmp_path / "backup")
    descriptions = b"".join(p.read_bytes() for p in (tmp_path / "backup" / "photos").glob("*.json"))
    assert b"Lovelace" not in descriptions


def test_a_backup_is_its_owners_alone(tmp_path):
    previous = os.umask(0o022)
    try:
        Archive(tmp_path / "data").put("a.png", photo_of("ada"))
        backup.backup(tmp_path / "data", tmp_path / "backup")
    finally:
        os.umask(previous)
    made = [tmp_path / "backup", *(tmp_path / "backup").rglob("*")]
    assert {p.name for p in made} >= {"faceprint.db", "backup.json", "photos"}
    assert {str(p): oct(p.stat().st_mode & 0o777) for p in made if p.stat().st_mode & 0o077} == {}
