"""Face detection and descriptors with dlib (HOG detector, 5-point landmarks,
ResNet descriptor), for the embedded engine.

Detection policy (measured with scripts/bench.py and the archive tests):
1. The photo is decoded with at most WORK_PIXELS (large JPEGs decode
   straight at 1/2, 1/4 or 1/8 scale in draft mode).
2. The HOG detector runs once, in grayscale (30% faster than RGB, same
   faces), on a frame resized to about DETECT_PIXELS: small photos are
   upsampled up to 2x, so their faces are found down to ~40 px; large ones
   are never upsampled (there the floor is HOG's 80 px window at that scale).
3. Detections scoring below ACCEPT_SCORE, down to CANDIDATE_SCORE (the usual
   sign of a small or tilted face, or of a false alarm), are re-checked on a
   small crop, upsampled and rotated by RETRY_ANGLES, and kept only if a face
   scores there: only those regions pay for the retries.
"""

import math
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

from chalicelib.core.errors import ImageTooComplex
from chalicelib.core.limits import MAX_FACES, TIME_LIMIT_SECONDS
from chalicelib.core.pixels import decode_rgb

WORK_PIXELS = 4_000_000
DETECT_PIXELS = 1_500_000
MAX_UPSAMPLE = 2.0
ACCEPT_SCORE = 0.2
CANDIDATE_SCORE = -0.6
RETRY_ANGLES = (0, -30, -15, 15, 30)
RETRY_FACE_PX = 100
MAX_RETRIES = 8
MODEL_VERSION = f"dlib-{dlib.__version__}/resnet-v1"


@dataclass(frozen=True)
class Face:
    left: float  # pixels in the decoded (work) image
    top: float
    width: float
    height: float
    score: float  # HOG detector score (0 is dlib's threshold)
    landmarks: tuple[tuple[float, float], ...]
    descriptor: np.ndarray | None


@dataclass(frozen=True)
class Analysis:
    width: int  # of the decoded image; Face boxes are relative to it
    height: int
    faces: list[Face]


@dataclass
class _Models:
    detector: object
    shapes: object
    descriptors: object


class FaceAnalyzer:
    """Runs the analysis in a pool of worker processes, each with its own
    dlib models. dlib's shape predictor, descriptor and detector.run() hold
    the GIL (measured: two threads take as long as one after the other), and
    its objects are not documented as thread-safe, so processes are what
    lets 2 cores serve 2 requests, and a worker that runs past the time limit
    can be killed without touching the server."""

    def __init__(self, workers: int | None = None, time_limit: float = TIME_LIMIT_SECONDS) -> None:
        self._workers = workers or os.cpu_count() or 1
        self._time_limit = time_limit
        self._executor: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def analyze(self, data: bytes, largest_only: bool = False) -> Analysis:
        for attempt in (1, 2):
            executor = self._pool()
            future = executor.submit(_analyze_in_worker, data, largest_only)
            try:
                return future.result(timeout=self._time_limit)
            except FutureTimeout:
                self._restart(executor)
                raise ImageTooComplex(
                    f"Analysing this photo took over {self._time_limit:g} s, the limit: send a smaller photo."
                ) from None
            except BrokenProcessPool:
                # Another request's runaway photo got the workers killed: retry once.
                self._restart(executor)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None

    def _pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ProcessPoolExecutor(
                    self._workers, mp_context=multiprocessing.get_context("spawn"), initializer=_load_models
                )
            return self._executor

    def _restart(self, executor: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is executor:
                self._executor = None
        # ProcessPoolExecutor.kill_workers() arrives in Python 3.14; until then
        # its process table is the only handle on the workers.
        for process in list(executor._processes.values()):
            process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


_worker_models: "_Models | None" = None


def _load_models() -> None:
    global _worker_models
    _worker_models = _Models(
        detector=dlib.get_frontal_face_detector(),
        shapes=dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location()),
        descriptors=dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location()),
    )


def _analyze_in_worker(data: bytes, largest_only: bool) -> Analysis:
    image = decode_rgb(data, WORK_PIXELS)
    pixels = np.asarray(image)
    found = sorted(_detect(_worker_models.detector, image), key=lambda f: f.box_area, reverse=True)
    found = found[:1] if largest_only else found[:MAX_FACES]
    return Analysis(image.width, image.height, [f.describe(_worker_models, pixels) for f in found])


@dataclass(frozen=True)
class _Found:
    """A detection, with the frame it was found in: a rotated crop for retried faces."""

    rect: dlib.rectangle  # in `frame` coordinates
    score: float
    frame: np.ndarray | None  # None: the work image itself
    to_work: "_Transform"

    @property
    def box_area(self) -> float:
        return (self.rect.width() * self.to_work.scale) ** 2

    def describe(self, models: _Models, work: np.ndarray) -> Face:
        frame = work if self.frame is None else self.frame
        shape = models.shapes(frame, self.rect)
        descriptor = np.array(models.descriptors.compute_face_descriptor(frame, shape), dtype=np.float32)
        points = tuple(self.to_work.point(p.x, p.y) for p in shape.parts())
        cx, cy = self.to_work.point(self.rect.dcenter().x, self.rect.dcenter().y)
        w = self.rect.width() * self.to_work.scale
        h = self.rect.height() * self.to_work.scale
        return Face(cx - w / 2, cy - h / 2, w, h, self.score, points, descriptor)


@dataclass(frozen=True)
class _Transform:
    """Maps frame coordinates back to the work image: scale, rotate by
    `angle` degrees about `pivot` (in frame coordinates), then offset."""

    scale: float = 1.0
    angle: float = 0.0
    pivot: tuple[float, float] = (0.0, 0.0)
    offset: tuple[float, float] = (0.0, 0.0)

    def point(self, x: float, y: float) -> tuple[float, float]:
        if self.angle:
            # PIL rotates counter-clockwise on screen; undo it.
            a = math.radians(self.angle)
            dx, dy = x - self.pivot[0], y - self.pivot[1]
            x = self.pivot[0] + dx * math.cos(a) - dy * math.sin(a)
            y = self.pivot[1] + dx * math.sin(a) + dy * math.cos(a)
        return self.offset[0] + x * self.scale, self.offset[1] + y * self.scale


def _detect(detector, image: Image.Image) -> list[_Found]:
    scale = min(MAX_UPSAMPLE, math.sqrt(DETECT_PIXELS / (image.width * image.height)))
    frame = (
        image
        if abs(scale - 1) < 0.05
        else image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    )
    # HOG on grayscale: ~30% faster than on RGB, the same faces on the shared photos.
    rects, scores, _ = detector.run(np.asarray(frame.convert("L")), 0, CANDIDATE_SCORE)
    # Landmarks and descriptors are computed on the work image itself.
    rects = [_scaled(r, image.width / frame.width) for r in rects]
    faces = [_Found(r, s, None, _Transform()) for r, s in zip(rects, scores, strict=True) if s >= ACCEPT_SCORE]
    candidates = [
        (r.left(), r.top(), r.right(), r.bottom()) for r, s in zip(rects, scores, strict=True) if s < ACCEPT_SCORE
    ]
    for box in candidates[:MAX_RETRIES]:
        if any(_overlaps(box, _work_box(f)) for f in faces):
            continue
        retried = _retry(detector, image, box)
        if retried is not None:
            faces.append(retried)
    return faces


def _scaled(rect: dlib.rectangle, scale: float) -> dlib.rectangle:
    return dlib.rectangle(
        round(rect.left() * scale), round(rect.top() * scale), round(rect.right() * scale), round(rect.bottom() * scale)
    )


def _work_box(found: _Found) -> tuple[float, float, float, float]:
    cx, cy = found.to_work.point(found.rect.dcenter().x, found.rect.dcenter().y)
    half = found.rect.width() * found.to_work.scale / 2
    return cx - half, cy - half, cx + half, cy + half


def _overlaps(a: tuple, b: tuple) -> bool:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h > 0.3 * smaller


def _retry(detector, image: Image.Image, box: tuple) -> _Found | None:
    """Look again at one candidate region, upsampled and rotated."""
    side = max(box[2] - box[0], box[3] - box[1]) * 2.5
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top, side = round(cx - side / 2), round(cy - side / 2), round(side)
    crop_scale = RETRY_FACE_PX * 2.5 / side
    size = round(side * crop_scale)
    # crop() pads with black where the region leaves the photo.
    crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    best = None
    for angle in RETRY_ANGLES:
        rotated = crop.rotate(angle, Image.Resampling.BILINEAR) if angle else crop
        rects, scores, _ = detector.run(np.asarray(rotated.convert("L")), 0, 0.0)
        frame = np.asarray(rotated)
        for rect, score in zip(rects, scores, strict=False):
            near = abs(rect.dcenter().x - size / 2) < size / 4 and abs(rect.dcenter().y - size / 2) < size / 4
            if near and (best is None or score > best.score):
                to_work = _Transform(1 / crop_scale, angle, (size / 2, size / 2), (left, top))
                best = _Found(rect, score, frame, to_work)
    return best
