"""What the embedded database leaves on disk: deleted rows are overwritten
(secure_delete), the write-ahead log is emptied by a checkpoint, and the
files are their owner's alone."""

import os

from chalicelib.embedded.database import Database
from chalicelib.embedded.records import SqliteRecordStore
from tests.support.records import image

NAME = "Zebulon Quux"


def on_disk(folder) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file())


def test_a_deleted_record_leaves_no_byte_in_the_database_or_its_log(tmp_path):
    db = Database(tmp_path / "faceprint.db")
    assert db.read("PRAGMA secure_delete")[0][0] == 1  # whatever the SQLite build's default
    records = SqliteRecordStore(db)
    for n in range(30):  # neighbours on the same pages, which stay
        records.put_image(image(f"k{n}.jpg", metadata={"name": f"Someone {n}"}), None)
    records.put_image({**image("z.jpg"), "metadata": {"name": NAME}}, None)
    moment = "2026-01-01T00:00:00.000+00:00"
    records.create_person({"personId": "zq", "name": NAME, "faceCount": 0, "createdAt": moment, "updatedAt": moment})
    assert db.checkpoint() and NAME.encode() in on_disk(tmp_path)
    records.remove_image("z.jpg")
    records.remove_person("zq", moment)
    assert db.checkpoint()
    assert os.path.getsize(tmp_path / "faceprint.db-wal") == 0
    assert NAME.encode() not in on_disk(tmp_path)
    assert b"Someone 7" in on_disk(tmp_path)


def test_the_database_its_log_and_folder_are_the_owners_alone(tmp_path):
    previous = os.umask(0o022)
    try:
        db = Database(tmp_path / "data" / "faceprint.db")
        SqliteRecordStore(db).put_image(image("k.jpg"), None)
    finally:
        os.umask(previous)
    assert oct((tmp_path / "data").stat().st_mode & 0o777) == "0o700"
    modes = {path.name: oct(path.stat().st_mode & 0o777) for path in (tmp_path / "data").iterdir()}
    assert modes == {"faceprint.db": "0o600", "faceprint.db-wal": "0o600", "faceprint.db-shm": "0o600"}
