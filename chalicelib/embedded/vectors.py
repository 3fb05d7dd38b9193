"""The collection's nearest-neighbour index: an HNSW graph (usearch) over
float16 copies of the descriptors, keyed by the collection table's `id`.

It is approximate and holds no face: Collection asks it for candidates and
re-ranks them with the exact float32 descriptors kept in SQLite. Figures and
the choice: scripts/bench_vectors.py, and the README.

On disk a snapshot is two files: the index itself (usearch's format, under a
name of its own), and at `path` a small manifest naming it, with its size,
CRC-32 and whatever the caller records (which change of the collection it
reflects). The manifest is replaced atomically last, so a crash while saving
leaves the previous snapshot whole; a snapshot that fails any check is
reported as missing, and the caller rebuilds.
"""

import contextlib
import json
import os
import uuid
import zlib
from pathlib import Path

import numpy as np
from usearch.index import Index

DIMENSIONS = 128
CONNECTIVITY = 16  # HNSW's M: 32 links per face on the bottom layer
EXPANSION_ADD = 128  # efConstruction
EXPANSION_SEARCH = 64  # ef; a search asking for more candidates looks that much wider
FORMAT = f"usearch-f16-l2sq-m{CONNECTIVITY}"
# The approximate (float16) distance of a face is within this of its exact
# distance: far more than float16 rounding can move a distance of dlib
# descriptors (about 1e-3), so filtering candidates with it drops no face.
APPROXIMATION_SLACK = 0.02
_CHUNK = 1 << 20


class VectorIndex:
    def __init__(self, index: Index | None = None) -> None:
        self._index = index or Index(
            ndim=DIMENSIONS,
            metric="l2sq",
            dtype="f16",
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )
        self._index.expansion_search = EXPANSION_SEARCH

    def __len__(self) -> int:
        return len(self._index)

    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int = 1) -> None:
        if len(ids):
            self._index.add(np.asarray(ids, dtype=np.uint64), np.asarray(vectors, dtype=np.float32), threads=threads)

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self._index.remove(np.asarray(ids, dtype=np.uint64))

    def contains(self, ids: np.ndarray) -> np.ndarray:
        if not len(ids):
            return np.zeros(0, dtype=bool)
        return np.atleast_1d(self._index.contains(np.asarray(ids, dtype=np.uint64)))

    def search(self, vector: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `count` ids, nearest first, with approximate distances."""
        if not len(self._index) or count <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        found = self._index.search(np.asarray(vector, dtype=np.float32), count, threads=1)
        return found.keys.astype(np.int64), np.sqrt(np.maximum(found.distances, 0))

    def save(self, path: Path, about: dict) -> None:
        """Write a snapshot at `path` (the manifest) recording `about`."""
        data = path.with_name(f"{path.name}.{uuid.uuid4().hex}.usearch")
        try:
            self._index.save(str(data))
            _fsync(data)
            manifest = {"format": FORMAT, "file": data.name, "bytes": data.stat().st_size, "crc32": _crc32(data)}
            _replace(path, json.dumps(manifest | {"about": about}).encode())
        except BaseException:
            data.unlink(missing_ok=True)
            raise
        for old in path.parent.glob(f"{path.name}.*.usearch"):
            if old != data:
                old.unlink(missing_ok=True)

    @staticmethod
    def recorded(path: Path) -> dict | None:
        """What the snapshot at `path` records, without loading it."""
        try:
            return json.loads(path.read_bytes())["about"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    @classmethod
    def load(cls, path: Path) -> "tuple[VectorIndex, dict] | None":
        """The snapshot at `path` and what it records, or None when it is
        missing, incomplete, corrupt or of another format."""
        try:
            manifest = json.loads(path.read_bytes())
            data = path.with_name(manifest["file"])
            if (
                manifest["format"] != FORMAT
                or data.stat().st_size != manifest["bytes"]
                or _crc32(data) != manifest["crc32"]
            ):
                return None
            index = Index.restore(str(data))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        if index is None or index.ndim != DIMENSIONS:
            return None
        return cls(index), manifest["about"]


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _replace(path: Path, content: bytes) -> None:
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
