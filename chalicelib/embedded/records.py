"""Image and face records in SQLite (the embedded stage's DynamoDB)."""

import json
from contextlib import AbstractContextManager

from chalicelib.core.ports import Page, RecordStore
from chalicelib.embedded.database import Database
from chalicelib.embedded.paging import decode_token, encode_token

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    key TEXT PRIMARY KEY,
    etag TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS faces (
    face_id TEXT PRIMARY KEY,
    image_key TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS faces_by_image ON faces (image_key);
"""


class SqliteRecordStore(RecordStore):
    def __init__(self, db: Database) -> None:
        self._db = db
        for statement in filter(str.strip, _SCHEMA.split(";")):
            db.write(statement)

    def atomic(self) -> AbstractContextManager:
        return self._db.transaction()

    def get_image(self, key: str) -> dict | None:
        rows = self._db.read("SELECT record FROM images WHERE key = ?", (key,))
        return json.loads(rows[0]["record"]) if rows else None

    def mark_pending(self, image: dict) -> None:
        self._db.write(
            "INSERT INTO images (key, etag, record) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET etag = excluded.etag, record = excluded.record "
            "WHERE images.etag <> excluded.etag",
            (image["key"], image["etag"], json.dumps(image)),
        )

    def save_image(self, image: dict, faces: list[dict]) -> None:
        with self._db.transaction():
            self._db.write(
                "INSERT OR REPLACE INTO images (key, etag, record) VALUES (?, ?, ?)",
                (image["key"], image["etag"], json.dumps(image)),
            )
            self._db.write("DELETE FROM faces WHERE image_key = ?", (image["key"],))
            self._db.write_many(
                "INSERT INTO faces (face_id, image_key, record) VALUES (?, ?, ?)",
                [(face["FaceId"], image["key"], json.dumps(face)) for face in faces],
            )

    def faces_of(self, key: str) -> list[dict]:
        rows = self._db.read("SELECT record FROM faces WHERE image_key = ? ORDER BY rowid", (key,))
        return [json.loads(row["record"]) for row in rows]

    def find_faces(self, face_ids: list[str]) -> dict[str, tuple[dict, dict]]:
        if not face_ids:
            return {}
        marks = ",".join("?" * len(face_ids))
        rows = self._db.read(
            f"SELECT f.face_id, f.record AS face, i.record AS image FROM faces f "
            f"JOIN images i ON i.key = f.image_key WHERE f.face_id IN ({marks})",
            face_ids,
        )
        return {row["face_id"]: (json.loads(row["face"]), json.loads(row["image"]).get("metadata", {})) for row in rows}

    def get_face(self, face_id: str) -> dict | None:
        rows = self._db.read("SELECT record FROM faces WHERE face_id = ?", (face_id,))
        return json.loads(rows[0]["record"]) if rows else None

    def list_images(self, limit: int, token: str | None = None) -> Page:
        return self._page("SELECT key AS position, record FROM images WHERE key > ? ORDER BY key", limit, token)

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        return self._page(
            "SELECT face_id AS position, record FROM faces WHERE face_id > ? ORDER BY face_id", limit, token
        )

    def delete_face(self, face_id: str) -> None:
        with self._db.transaction():
            face = self.get_face(face_id)
            if face is None:
                return
            self._db.write("DELETE FROM faces WHERE face_id = ?", (face_id,))
            image = self.get_image(face["imageKey"])
            if image is not None:
                image["faceCount"] = max(0, image["faceCount"] - 1)
                self._db.write("UPDATE images SET record = ? WHERE key = ?", (json.dumps(image), image["key"]))

    def delete_image(self, key: str) -> None:
        with self._db.transaction():
            self._db.write("DELETE FROM faces WHERE image_key = ?", (key,))
            self._db.write("DELETE FROM images WHERE key = ?", (key,))

    def _page(self, sql: str, limit: int, token: str | None) -> Page:
        rows = self._db.read(f"{sql} LIMIT ?", (decode_token(token) or "", limit + 1))
        items = [json.loads(row["record"]) for row in rows[:limit]]
        more = len(rows) > limit
        return Page(items, encode_token(rows[limit - 1]["position"]) if more else None)

    def count_images(self) -> int:
        return self._db.read("SELECT count(*) AS n FROM images")[0]["n"]
