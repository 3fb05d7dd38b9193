"""Image, face and person records in SQLite (the embedded stage's
DynamoDB). Every compare-and-set is one transaction. A face's person is
its `user_id` column (indexed: GET /faces?person=) and its record's
`UserId`, written together; a person's faceCount is counted, so faces
removed with their image leave their person at once."""

import json
from contextlib import AbstractContextManager

from chalicelib.core.ports import Committed, FaceKey, ImageState, Page, RecordStore
from chalicelib.core.records import PENDING, next_revision, redrive_due
from chalicelib.embedded.database import Database
from chalicelib.embedded.paging import decode_token, encode_token

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    key TEXT PRIMARY KEY,
    etag TEXT NOT NULL,
    record TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 1,
    pending_since TEXT
);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY,
    image_key TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_by_image ON faces (image_key);
CREATE TABLE IF NOT EXISTS people (
    person_id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS suggestions (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    record TEXT NOT NULL
)
"""
# Columns added since the first release: an archive made by it gains them on open.
_ADDED_COLUMNS = {
    "revision": "ALTER TABLE images ADD COLUMN revision INTEGER NOT NULL DEFAULT 1",
    "pending_since": "ALTER TABLE images ADD COLUMN pending_since TEXT",
}
_ADDED_FACE_COLUMNS = {"user_id": "ALTER TABLE faces ADD COLUMN user_id TEXT"}
# A deleted person's row stays as a tombstone: deleted_at says when.
_ADDED_PEOPLE_COLUMNS = {"deleted_at": "ALTER TABLE people ADD COLUMN deleted_at TEXT"}
_USER_INDEX = "CREATE INDEX IF NOT EXISTS faces_by_user ON faces (user_id) WHERE user_id IS NOT NULL"
_PENDING_INDEX = "CREATE INDEX IF NOT EXISTS images_pending ON images (pending_since) WHERE pending_since IS NOT NULL"


class SqliteRecordStore(RecordStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        with db.transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.write(statement)
            columns = {row["name"] for row in db.read("PRAGMA table_info(images)")}
            for column, statement in _ADDED_COLUMNS.items():
                if column not in columns:
                    db.write(statement)
            if "pending_since" not in columns:
                db.write(
                    "UPDATE images SET pending_since = json_extract(record, '$.updatedAt') "
                    "WHERE json_extract(record, '$.status') = ?",
                    (PENDING,),
                )
            db.write(_PENDING_INDEX)
            face_columns = {row["name"] for row in db.read("PRAGMA table_info(faces)")}
            for column, statement in _ADDED_FACE_COLUMNS.items():
                if column not in face_columns:
                    db.write(statement)
            db.write(_USER_INDEX)
            people_columns = {row["name"] for row in db.read("PRAGMA table_info(people)")}
            for column, statement in _ADDED_PEOPLE_COLUMNS.items():
                if column not in people_columns:
                    db.write(statement)
            # Tombstones written before they were kept nameless forget the name now.
            db.write(
                "UPDATE people SET record = json_object('personId', person_id) WHERE deleted_at IS NOT NULL "
                "AND json_extract(record, '$.erasing') IS NULL AND json_extract(record, '$.name') IS NOT NULL"
            )

    def get_image(self, key: str) -> dict | None:
        rows = self._db.read("SELECT record, revision FROM images WHERE key = ?", (key,))
        return _image(rows[0]) if rows else None

    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        with self._db.transaction(immediate=True):
            if not self._at_revision(image["key"], expected_revision):
                return None
            return self._write_image(image, expected_revision)

    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int | None) -> Committed | None:
        key = image["key"]
        with self._db.transaction(immediate=True):
            if not self._at_revision(key, expected_revision):
                return None
            kept = {face["FaceId"] for face in faces}
            rows = self._db.read("SELECT face_id, user_id, record FROM faces WHERE image_key = ?", (key,))
            replaced = [json.loads(row["record"]) for row in rows if row["face_id"] not in kept]
            # A face keeps the person it has now (an association may have
            # come after the caller read the faces it passes back).
            owners = {row["face_id"]: row["user_id"] for row in rows}
            self._db.write("DELETE FROM faces WHERE image_key = ?", (key,))
            self._db.write_many(
                "INSERT INTO faces (face_id, image_key, record, user_id) VALUES (?, ?, ?, ?)",
                [
                    (
                        face["FaceId"],
                        key,
                        json.dumps(_with_owner(face, owners.get(face["FaceId"]))),
                        owners.get(face["FaceId"]),
                    )
                    for face in faces
                ],
            )
            written = self._write_image(image, expected_revision)
        return Committed(written, replaced)

    def remove_image(self, key: str, expected_revision: int | None = None) -> list[str] | None:
        with self._db.transaction(immediate=True):
            if expected_revision is not None and not self._at_revision(key, expected_revision):
                return None
            removed = [row["face_id"] for row in self._db.read("SELECT face_id FROM faces WHERE image_key = ?", (key,))]
            self._db.write("DELETE FROM faces WHERE image_key = ?", (key,))
            self._db.write("DELETE FROM images WHERE key = ?", (key,))
        return removed

    def faces_of(self, key: str) -> list[dict]:
        rows = self._db.read("SELECT record FROM faces WHERE image_key = ? ORDER BY rowid", (key,))
        return [json.loads(row["record"]) for row in rows]

    def find_faces(self, face_ids: list[str]) -> dict[str, tuple[dict, dict]]:
        if not face_ids:
            return {}
        marks = ",".join("?" * len(face_ids))
        rows = self._db.read(
            f"SELECT f.face_id, f.record AS face, json_extract(i.record, '$.metadata') AS metadata FROM faces f "
            f"JOIN images i ON i.key = f.image_key WHERE f.face_id IN ({marks})",
            face_ids,
        )
        return {row["face_id"]: (json.loads(row["face"]), json.loads(row["metadata"] or "{}")) for row in rows}

    def get_face(self, face_id: str) -> dict | None:
        rows = self._db.read("SELECT record FROM faces WHERE face_id = ?", (face_id,))
        return json.loads(rows[0]["record"]) if rows else None

    def list_images(self, limit: int, token: str | None = None) -> Page:
        rows = self._db.read(
            "SELECT key, record, revision FROM images WHERE key > ? ORDER BY key LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        more = len(rows) > limit
        return Page([_image(row) for row in rows[:limit]], encode_token(rows[limit - 1]["key"]) if more else None)

    def list_pending(self, older_than: str, limit: int) -> list[str]:
        rows = self._db.read(
            "SELECT key FROM images WHERE pending_since IS NOT NULL AND pending_since < ? "
            "ORDER BY pending_since LIMIT ?",
            (older_than, limit),
        )
        return [row["key"] for row in rows]

    def list_image_states(self, limit: int, token: str | None = None) -> Page:
        rows = self._db.read(
            "SELECT key, etag, json_extract(record, '$.status'), json_extract(record, '$.faceCount'), "
            "json_extract(record, '$.uploadedAt') "
            "FROM images WHERE key > ? ORDER BY key LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        states = [ImageState(*row) for row in rows[:limit]]
        return Page(states, encode_token(rows[limit - 1][0]) if len(rows) > limit else None)

    def list_face_keys(self, limit: int, token: str | None = None) -> Page:
        rows = self._db.read(
            "SELECT face_id, image_key, user_id FROM faces WHERE face_id > ? ORDER BY face_id LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        keys = [FaceKey(*row) for row in rows[:limit]]
        return Page(keys, encode_token(rows[limit - 1][0]) if len(rows) > limit else None)

    # Batch writes for `make seed` / `make unseed` (chalicelib/ops/seeding.py),
    # beside the port: a million records one compare-and-set at a time would
    # take an hour.

    def transaction(self) -> AbstractContextManager:
        """A write transaction on the store's database, which the embedded
        collection (the same database) joins."""
        return self._db.transaction(immediate=True)

    def add_indexed(self, images: list[dict], faces: list[dict]) -> None:
        """Record new images (revision 1) and their faces, all at once; joins
        the caller's transaction. A key or face id already recorded fails the
        whole batch (sqlite3.IntegrityError): nothing is overwritten."""
        with self._db.transaction(immediate=True):
            self._db.write_many(
                "INSERT INTO images (key, etag, record, revision) VALUES (?, ?, ?, 1)",
                [(image["key"], image["etag"], json.dumps(image)) for image in images],
            )
            self._db.write_many(
                "INSERT INTO faces (face_id, image_key, record) VALUES (?, ?, ?)",
                [(face["FaceId"], face["imageKey"], json.dumps(face)) for face in faces],
            )

    def remove_images(self, keys: list[str]) -> list[str]:
        """Remove these image records and their face records, whatever their
        revision; joins the caller's transaction. Returns the removed face ids."""
        with self._db.transaction(immediate=True):
            removed = [
                row[0]
                for row in self._db.read(
                    "SELECT face_id FROM faces WHERE image_key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
                )
            ]
            self._db.write("DELETE FROM faces WHERE image_key IN (SELECT value FROM json_each(?))", (json.dumps(keys),))
            self._db.write("DELETE FROM images WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),))
        return removed

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        rows = self._db.read(
            "SELECT face_id, record FROM faces WHERE face_id > ? ORDER BY face_id LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        faces = [json.loads(row["record"]) for row in rows[:limit]]
        return Page(faces, encode_token(rows[limit - 1]["face_id"]) if len(rows) > limit else None)

    def delete_face(self, face_id: str) -> None:
        with self._db.transaction(immediate=True):
            face = self.get_face(face_id)
            if face is None:
                return
            self._db.write("DELETE FROM faces WHERE face_id = ?", (face_id,))
            image = self.get_image(face["imageKey"])
            if image is not None:
                image["faceCount"] = max(0, image["faceCount"] - 1)
                self._write_image(image, image["revision"])

    def count_images(self) -> int:
        return self._db.read("SELECT count(*) AS n FROM images")[0]["n"]

    def get_person(self, person_id: str) -> dict | None:
        return self.find_people([person_id]).get(person_id)

    def create_person(self, person: dict, not_deleted_since: str | None = None) -> dict | None:
        record = {name: value for name, value in person.items() if name != "faceCount"}
        with self._db.transaction(immediate=True):
            written = self._db.write(
                "INSERT INTO people (person_id, record) VALUES (?, ?) ON CONFLICT (person_id) DO UPDATE "
                "SET record = excluded.record, deleted_at = NULL "
                "WHERE people.deleted_at IS NOT NULL AND (? IS NULL OR people.deleted_at < ?) "
                "AND json_extract(people.record, '$.erasing') IS NULL",
                (person["personId"], json.dumps(record), not_deleted_since, not_deleted_since),
            )
            return self.get_person(person["personId"]) if written else None

    def rename_person(self, person_id: str, name: str, updated_at: str) -> dict | None:
        with self._db.transaction(immediate=True):
            written = self._db.write(
                "UPDATE people SET record = json_set(record, '$.name', ?, '$.updatedAt', ?) "
                "WHERE person_id = ? AND deleted_at IS NULL",
                (name, updated_at, person_id),
            )
            return self.get_person(person_id) if written else None

    def remove_person(self, person_id: str, deleted_at: str) -> list[str] | None:
        with self._db.transaction(immediate=True):
            if not self._db.write(
                "UPDATE people SET deleted_at = ?, record = json_object('personId', person_id) "
                "WHERE person_id = ? AND deleted_at IS NULL",
                (deleted_at, person_id),
            ):
                return None
            faces = [
                row["face_id"] for row in self._db.read("SELECT face_id FROM faces WHERE user_id = ?", (person_id,))
            ]
            self._set_owner(faces, None)
        return faces

    def person_deleted_at(self, person_id: str) -> str | None:
        rows = self._db.read("SELECT deleted_at FROM people WHERE person_id = ?", (person_id,))
        return rows[0]["deleted_at"] if rows else None

    def mark_erasure(self, person_id: str, erasure: dict) -> dict:
        with self._db.transaction(immediate=True):
            rows = self._db.read("SELECT record, deleted_at FROM people WHERE person_id = ?", (person_id,))
            record = json.loads(rows[0]["record"]) if rows else {"personId": person_id}
            if "erasing" in record:
                return {**record["erasing"], "name": record.get("name")}
            found = "nothing" if not rows else "person" if rows[0]["deleted_at"] is None else "tombstone"
            marked = {**record, "erasing": {**erasure, "found": found}}
            self._db.write(
                "INSERT INTO people (person_id, record, deleted_at) VALUES (?, ?, ?) ON CONFLICT (person_id) "
                "DO UPDATE SET record = excluded.record, deleted_at = coalesce(people.deleted_at, excluded.deleted_at)",
                (person_id, json.dumps(marked), erasure["since"]),
            )
        return {**marked["erasing"], "name": record.get("name")}

    def update_erasure(self, person_id: str, erasure: dict) -> None:
        progress = {name: value for name, value in erasure.items() if name != "name"}
        self._db.write(
            "UPDATE people SET record = json_set(record, '$.erasing', json(?)) "
            "WHERE person_id = ? AND json_extract(record, '$.erasing') IS NOT NULL",
            (json.dumps(progress), person_id),
        )

    def erasures_under_way(self) -> list[dict]:
        rows = self._db.read(
            "SELECT person_id, json_extract(record, '$.erasing.since') AS since, "
            "json_extract(record, '$.erasing.photos') AS photos FROM people "
            "WHERE json_extract(record, '$.erasing') IS NOT NULL ORDER BY person_id"
        )
        return [{"personId": row["person_id"], "since": row["since"], "photos": row["photos"]} for row in rows]

    def finish_erasure(self, person_id: str, erased_at: str) -> None:
        with self._db.transaction(immediate=True):
            self._db.write(
                "UPDATE people SET record = json_object('personId', person_id, 'erasedAt', ?), "
                "deleted_at = coalesce(deleted_at, ?) WHERE person_id = ?",
                (erased_at, erased_at, person_id),
            )
            faces = [row[0] for row in self._db.read("SELECT face_id FROM faces WHERE user_id = ?", (person_id,))]
            self._set_owner(faces, None)

    def list_people(self, limit: int, token: str | None = None) -> Page:
        rows = self._db.read(
            f"{_PERSON_SELECT} WHERE p.person_id > ? AND p.deleted_at IS NULL ORDER BY p.person_id LIMIT ?",
            (decode_token(token) or "", limit + 1),
        )
        more = len(rows) > limit
        return Page(
            [_person(row) for row in rows[:limit]], encode_token(rows[limit - 1]["person_id"]) if more else None
        )

    def find_people(self, person_ids: list[str]) -> dict[str, dict]:
        found = {}
        ids = list(dict.fromkeys(person_ids))
        for start in range(0, len(ids), _SQL_BATCH):
            chunk = ids[start : start + _SQL_BATCH]
            marks = ",".join("?" * len(chunk))
            rows = self._db.read(f"{_PERSON_SELECT} WHERE p.person_id IN ({marks}) AND p.deleted_at IS NULL", chunk)
            found.update({row["person_id"]: _person(row) for row in rows})
        return found

    def associate_faces(self, person_id: str, face_ids: list[str]) -> list[str] | None:
        with self._db.transaction(immediate=True):
            if not self._db.read("SELECT 1 FROM people WHERE person_id = ? AND deleted_at IS NULL", (person_id,)):
                return None
            existing = [face_id for face_id in dict.fromkeys(face_ids) if self.get_face(face_id) is not None]
            self._set_owner(existing, person_id)
        return existing

    def disassociate_faces(self, person_id: str, face_ids: list[str]) -> list[str]:
        with self._db.transaction(immediate=True):
            theirs = [
                face_id
                for face_id in dict.fromkeys(face_ids)
                if self._db.read("SELECT 1 FROM faces WHERE face_id = ? AND user_id = ?", (face_id, person_id))
            ]
            self._set_owner(theirs, None)
        return theirs

    def faces_of_person(self, person_id: str) -> list[dict]:
        rows = self._db.read("SELECT record FROM faces WHERE user_id = ? ORDER BY rowid", (person_id,))
        return [json.loads(row["record"]) for row in rows]

    def save_suggestions(self, suggestions: dict) -> None:
        self._db.write(
            "INSERT INTO suggestions (id, record) VALUES (1, ?) "
            "ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            (json.dumps(suggestions),),
        )

    def get_suggestions(self) -> dict | None:
        rows = self._db.read("SELECT record FROM suggestions WHERE id = 1")
        return json.loads(rows[0]["record"]) if rows else None

    def _set_owner(self, face_ids: list[str], person_id: str | None) -> None:
        """Write a face's person in its column and its record's UserId."""
        if person_id is None:
            statement = "UPDATE faces SET user_id = NULL, record = json_remove(record, '$.UserId') WHERE face_id = ?"
            self._db.write_many(statement, [(face_id,) for face_id in face_ids])
            return
        statement = "UPDATE faces SET user_id = ?, record = json_set(record, '$.UserId', ?) WHERE face_id = ?"
        self._db.write_many(statement, [(person_id, person_id, face_id) for face_id in face_ids])

    def _at_revision(self, key: str, expected: int | None) -> bool:
        rows = self._db.read("SELECT revision FROM images WHERE key = ?", (key,))
        return (rows[0]["revision"] if rows else None) == expected

    def _write_image(self, image: dict, expected_revision: int | None) -> dict:
        record = {name: value for name, value in image.items() if name != "revision"}
        revision = next_revision(expected_revision)
        pending_since = redrive_due(record)  # the re-drive's index (the column kept its first name)
        self._db.write(
            "INSERT INTO images (key, etag, record, revision, pending_since) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET etag = excluded.etag, record = excluded.record, "
            "revision = excluded.revision, pending_since = excluded.pending_since",
            (record["key"], record["etag"], json.dumps(record), revision, pending_since),
        )
        return {**record, "revision": revision}


def _image(row) -> dict:
    return {**json.loads(row["record"]), "revision": row["revision"]}


_SQL_BATCH = 500
_PERSON_SELECT = (
    "SELECT p.person_id, p.record, (SELECT count(*) FROM faces f WHERE f.user_id = p.person_id) AS face_count "
    "FROM people p"
)


def _person(row) -> dict:
    record = json.loads(row["record"])
    return {
        "personId": record["personId"],
        "name": record["name"],
        "faceCount": row["face_count"],
        "createdAt": record["createdAt"],
        "updatedAt": record["updatedAt"],
    }


def _with_owner(face: dict, person_id: str | None) -> dict:
    record = {name: value for name, value in face.items() if name != "UserId"}
    return {**record, "UserId": person_id} if person_id else record
