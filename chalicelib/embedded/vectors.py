"""The collection's nearest-neighbour index: faiss's inverted file (IVF) over
8-bit scalar-quantized descriptors, keyed by the collection table's `id`.

k-means splits the descriptors into lists_for(faces) lists (about 256 faces
each when trained); a search scans the PROBES lists nearest the query (every
list while there are at most PROBES), comparing the query with each face's
8-bit code (about 150 bytes a face, with its id and the id map that lets a
face be removed at once). It is approximate and holds no face: Collection asks
it for candidates and re-ranks them with the exact float32 descriptors kept
in SQLite. Figures and the choice: scripts/bench_vectors.py, and docs/engine.md.

The lists and the code ranges are learnt from the faces there are at
training: Collection retrains (rebuilds) the index when the collection has
grown RETRAIN_GROWTH times since. Below MIN_TRAINING faces, calibrated
synthetic descriptors (synthetic.py) make up the training sample.

On disk a snapshot is two files: the index itself (faiss's format, under a
name of its own), and at `path` a small manifest naming it, with its size,
CRC-32 and what the caller records (which change of the collection it
reflects). The manifest is replaced atomically last, so a crash while saving
leaves the previous snapshot whole; a snapshot that fails any check is
reported as missing, and the caller rebuilds.
"""

import contextlib
import json
import logging
import os
import uuid
import zlib
from pathlib import Path

# faiss's loader tries its AVX512 and AVX2 builds first and logs each miss
# ("Could not load library with AVX512 support ... ModuleNotFoundError") at
# INFO, which chalice local prints: they read like errors, and are not.
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
import faiss  # noqa: E402
import numpy as np  # noqa: E402

from chalicelib.embedded import private  # noqa: E402
from chalicelib.embedded.synthetic import synthetic_descriptors  # noqa: E402

DIMENSIONS = 128
FACES_PER_LIST = 256
MAX_LISTS = 4096
PROBES = 256  # lists scanned per search: 1M faces in 3,906 lists, 6.5% of them
TRAINING_PER_LIST = 40  # faiss wants at least 39 points per k-means centroid
KMEANS_ITERATIONS = 10
MIN_TRAINING = 4096
RANGE_MARGIN = 0.1  # each dimension's 8-bit range spans 10% beyond what training saw
FORMAT = f"faiss-ivf-sq8-{FACES_PER_LIST}"
# A face's approximate (8-bit) distance is within this of its exact distance:
# measured at most 0.005 on synthetic dlib descriptors (bench_vectors.py), so
# filtering candidates with ten times that drops no face.
APPROXIMATION_SLACK = 0.05
_CHUNK = 1 << 20


def lists_for(faces: int) -> int:
    return max(1, min(MAX_LISTS, faces // FACES_PER_LIST))


class VectorIndex:
    def __init__(self, index: faiss.IndexIVFScalarQuantizer, trained_for: int) -> None:
        self._index = index
        self._index.nprobe = PROBES
        self.trained_for = trained_for  # how many faces the collection had when it was trained

    @classmethod
    def trained(cls, sample: np.ndarray, faces: int) -> "VectorIndex":
        """An empty index for a collection of `faces`, trained on `sample`
        (some of its descriptors; synthetic ones make up a small sample)."""
        lists = lists_for(faces)
        wanted = max(MIN_TRAINING, TRAINING_PER_LIST * lists)
        if len(sample) > wanted:
            sample = sample[np.random.default_rng(0).choice(len(sample), wanted, replace=False)]
        if len(sample) < MIN_TRAINING:
            sample = np.concatenate([sample, synthetic_descriptors(MIN_TRAINING - len(sample), seed=0)[0]])
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatL2(DIMENSIONS), DIMENSIONS, lists, faiss.ScalarQuantizer.QT_8bit
        )
        index.cp.niter = KMEANS_ITERATIONS
        index.sq.rangestat_arg = RANGE_MARGIN
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # what makes remove_ids cheap
        return cls(index, faces)

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add faces not in the index (an id added twice would be there twice)."""
        if len(ids):
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> None:
        """Remove faces; ids not in the index are ignored."""
        if len(ids):
            self._index.remove_ids(faiss.IDSelectorArray(np.ascontiguousarray(ids, dtype=np.int64)))

    def search(self, vector: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to `count` ids, nearest first, with approximate distances."""
        if not self._index.ntotal or count <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        squares, ids = self._index.search(np.asarray(vector, dtype=np.float32).reshape(1, DIMENSIONS), count)
        found = ids[0] >= 0
        return ids[0][found], np.sqrt(np.maximum(squares[0][found], 0))

    def save(self, path: Path, about: dict) -> None:
        """Write a snapshot at `path` (the manifest) recording `about`."""
        data = path.with_name(f"{path.name}.{uuid.uuid4().hex}.faiss")
        try:
            faiss.write_index(self._index, str(data))
            os.chmod(data, private.FILE)
            _fsync(data)
            manifest = {
                "format": FORMAT,
                "file": data.name,
                "bytes": data.stat().st_size,
                "crc32": _crc32(data),
                "trained_for": self.trained_for,
            }
            _replace(path, json.dumps(manifest | {"about": about}).encode())
        except BaseException:
            data.unlink(missing_ok=True)
            raise
        for old in path.parent.glob(f"{path.name}.*.faiss"):
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
            index = faiss.read_index(str(data))
            trained_for = int(manifest["trained_for"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None
        if not isinstance(index, faiss.IndexIVFScalarQuantizer) or index.d != DIMENSIONS:
            return None
        return cls(index, trained_for), manifest["about"]


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
        with os.fdopen(os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, private.FILE), "wb") as f:
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
