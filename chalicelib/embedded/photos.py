"""Photos as plain files (the embedded stage's S3 bucket).

Each photo is two files named by the SHA-256 of its key (any key is safe on
disk): the bytes, and a JSON description (key, etag, size, type, metadata,
sequencer). Like S3, every stored version gets a sequencer that orders the
versions of a key; the store itself never indexes anything."""

import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

from chalicelib.core.errors import NotFound
from chalicelib.core.ports import ListedPhoto, Page, PhotoStore, StoredPhoto
from chalicelib.core.records import normalize_sequencer, now
from chalicelib.embedded import private
from chalicelib.embedded.paging import decode_token, encode_token

_LOCK_STRIPES = 64


class FilePhotoStore(PhotoStore):
    def __init__(self, root: Path) -> None:
        self._root = root
        private.folder(self._root)  # each file is written 0600 (write_atomically: mkstemp)
        self._locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]
        self._clock = threading.Lock()
        self._last_sequence = 0

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], original_content_type: str = ""
    ) -> StoredPhoto:
        path = self._path(key)
        with self._locks[hash(key) % _LOCK_STRIPES]:
            stored = StoredPhoto(
                key,
                hashlib.md5(data).hexdigest(),
                len(data),
                content_type,
                dict(metadata),
                sequencer=self._sequencer(),
                original_content_type=original_content_type,
                stored_at=now(),
            )
            write_atomically(path, data)
            write_atomically(path.with_suffix(".json"), json.dumps(_describe(stored)).encode())
        return stored

    def head(self, key: str) -> StoredPhoto | None:
        return self._head_by_name(self._path(key).name)

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as e:
            raise NotFound(f"The photo {key!r} is not stored.") from e

    def download_url(self, key: str) -> None:
        return None  # the API serves the bytes itself

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locks[hash(key) % _LOCK_STRIPES]:
            path.with_suffix(".json").unlink(missing_ok=True)
            path.unlink(missing_ok=True)

    def replace_metadata(self, key: str, etag: str, metadata: dict[str, str]) -> StoredPhoto | None:
        """A new description (new metadata, a new sequencer): the bytes stay,
        and the old description is replaced whole (no copy is kept)."""
        path = self._path(key)
        with self._locks[hash(key) % _LOCK_STRIPES]:
            current = self._head_by_name(path.name)
            if current is None or current.etag != etag:
                return None
            stored = replace(current, metadata=dict(metadata), sequencer=self._sequencer(), stored_at=now())
            write_atomically(path.with_suffix(".json"), json.dumps(_describe(stored)).encode())
        return stored

    def list(self, limit: int, token: str | None = None) -> Page:
        """In the order of the files' names (hashes of the keys): stable, not alphabetical."""
        after = decode_token(token) or ""
        names = sorted(p.stem for p in self._root.glob("*.json") if p.stem > after)
        photos = [self._head_by_name(name) for name in names[:limit]]
        listed = [ListedPhoto(photo.key, photo.etag, photo.size, photo.stored_at) for photo in photos if photo]
        return Page(listed, encode_token(names[limit - 1]) if len(names) > limit else None)

    def _head_by_name(self, name: str) -> StoredPhoto | None:
        try:
            info = json.loads((self._root / name).with_suffix(".json").read_bytes())
        except FileNotFoundError:
            return None
        if not (self._root / name).exists():
            return None  # its description outlived it (a crash mid-delete, or a hand): it is gone
        return described(info)

    def _sequencer(self) -> str:
        """Increasing across puts, in this process and across restarts
        (nanoseconds of the clock, never twice the same)."""
        with self._clock:
            self._last_sequence = max(time.time_ns(), self._last_sequence + 1)
            return normalize_sequencer(format(self._last_sequence, "X"))

    def _path(self, key: str) -> Path:
        return self._root / file_name(key)


def file_name(key: str) -> str:
    """The name of a photo's file (and, with `.json`, of its description):
    the SHA-256 of its key, so any key is safe on disk."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def described(info: dict) -> StoredPhoto:
    """The photo a description (`<file>.json`) describes."""
    return StoredPhoto(
        info["key"],
        info["etag"],
        info["size"],
        info["contentType"],
        info["metadata"],
        sequencer=info.get("sequencer"),
        original_content_type=info.get("originalContentType", ""),
        stored_at=info.get("storedAt"),
    )


def _describe(photo: StoredPhoto) -> dict:
    described = {
        "key": photo.key,
        "etag": photo.etag,
        "size": photo.size,
        "contentType": photo.content_type,
        "metadata": photo.metadata,
        "sequencer": photo.sequencer,
        "storedAt": photo.stored_at,
    }
    if photo.original_content_type and photo.original_content_type != photo.content_type:
        described["originalContentType"] = photo.original_content_type
    return described


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file beside it, synced, renamed over it."""
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
