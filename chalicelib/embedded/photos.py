"""Photos as plain files (the embedded stage's S3 bucket).

Like an S3 bucket with an ObjectCreated notification, the store hands every
stored photo to its listeners: wiring.py subscribes the same indexing code
that the S3 event handler runs. Delivery is synchronous, under a per-key
lock, so two uploads of one name cannot interleave."""

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path

from chalicelib.core.errors import NotFound
from chalicelib.core.ports import Page, PhotoListener, PhotoStore, StoredPhoto
from chalicelib.embedded.paging import decode_token, encode_token

_LOCK_STRIPES = 64


class FilePhotoStore(PhotoStore):
    def __init__(self, root: Path) -> None:
        self._root = root
        self._root.mkdir(parents=True, exist_ok=True)
        self._listeners: list[PhotoListener] = []
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def subscribe(self, listener: PhotoListener) -> None:
        self._listeners.append(listener)

    def put(self, photo: StoredPhoto, data: bytes) -> StoredPhoto:
        stored = StoredPhoto(
            photo.key,
            hashlib.md5(data).hexdigest(),
            len(data),
            photo.content_type,
            photo.metadata,
            photo.original_content_type,
        )
        path = self._path(photo.key)
        with self._locks[hash(photo.key) % _LOCK_STRIPES]:
            _write_atomically(path, data)
            _write_atomically(path.with_suffix(".json"), json.dumps(_describe(stored)).encode())
            for listener in self._listeners:
                listener(photo.key)
        return stored

    def head(self, key: str) -> StoredPhoto | None:
        return self._head_by_name(self._path(key).name)

    def _head_by_name(self, name: str) -> StoredPhoto | None:
        try:
            info = json.loads((self._root / name).with_suffix(".json").read_bytes())
        except FileNotFoundError:
            return None
        if not (self._root / name).exists():
            return None  # its description outlived it (a crash mid-delete, or a hand): it is gone
        original = info.get("originalContentType", "")
        return StoredPhoto(info["key"], info["etag"], info["size"], info["contentType"], info["metadata"], original)

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise NotFound(f"The photo {key!r} is not stored.") from e

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locks[hash(key) % _LOCK_STRIPES]:
            path.with_suffix(".json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def list(self, limit: int, token: str | None = None) -> Page:
        """In the order of the files' names (hashes of the keys): stable, not alphabetical."""
        after = decode_token(token) or ""
        names = sorted(p.stem for p in self._root.glob("*.json") if p.stem > after)
        photos = [photo for photo in map(self._head_by_name, names[:limit]) if photo is not None]
        return Page(photos, encode_token(names[limit - 1]) if len(names) > limit else None)

    def _path(self, key: str) -> Path:
        # Keys may hold any unicode: name files by their hash, never by the key.
        return self._root / hashlib.sha256(key.encode("utf-8")).hexdigest()


def _describe(photo: StoredPhoto) -> dict:
    described = {
        "key": photo.key,
        "etag": photo.etag,
        "size": photo.size,
        "contentType": photo.content_type,
        "metadata": photo.metadata,
    }
    if photo.original_content_type and photo.original_content_type != photo.content_type:
        described["originalContentType"] = photo.original_content_type
    return described


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
