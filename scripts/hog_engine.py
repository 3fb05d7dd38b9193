"""The embedded engine as it was before issue 23 (chalicelib/embedded/
analysis.py at commit 7bf95b5): dlib's HOG detector with a second look at
near misses, dlib's 5-point landmarks, and dlib-bin's ResNet descriptor
(built without BLAS). Kept only so that scripts/bench.py can measure the
engine against it in the same run; nothing in the product uses it.

The same policy and constants, the quality measures left out but for their
one costly step (the work image in grayscale), each stage timed.
"""

import math
import time

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

from chalicelib.core.pixels import decode_rgb

WORK_PIXELS = 4_000_000
DETECT_PIXELS = 1_500_000
MAX_UPSAMPLE = 2.0
ACCEPT_SCORE = 0.2
CANDIDATE_SCORE = -0.6
RETRY_ANGLES = (0, -30, -15, 15, 30)
RETRY_FACE_PX = 100
MAX_RETRIES = 8


class HogEngine:
    def __init__(self) -> None:
        self.detector = dlib.get_frontal_face_detector()
        self.shapes = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self.descriptors = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    def analyze(self, data: bytes, stages: dict[str, float]) -> list[tuple[tuple, np.ndarray]]:
        """Every face's (centre x, centre y, side) in the work image and its descriptor."""
        start = time.perf_counter()
        image = decode_rgb(data, WORK_PIXELS)
        start = _lap(stages, "decode", start)
        found = _detect(self.detector, image)
        start = _lap(stages, "detect", start)
        pixels = np.asarray(image)
        np.asarray(image.convert("L"))  # the quality measures' grayscale
        shapes = []
        for rect, frame, to_work in found:
            frame = pixels if frame is None else frame
            shapes.append((frame, self.shapes(frame, rect), to_work(rect.dcenter().x, rect.dcenter().y, rect.width())))
        start = _lap(stages, "landmarks", start)
        faces = [
            (box, np.array(self.descriptors.compute_face_descriptor(frame, shape), np.float32))
            for frame, shape, box in shapes
        ]
        _lap(stages, "descriptor", start)
        return faces


def _lap(stages: dict[str, float], stage: str, start: float) -> float:
    now = time.perf_counter()
    stages[stage] = stages.get(stage, 0.0) + now - start
    return now


def _at(scale: float = 1.0, angle: float = 0.0, pivot=(0.0, 0.0), offset=(0.0, 0.0)):
    """Maps a frame's (x, y, side) back to the work image."""

    def to_work(x: float, y: float, side: float) -> tuple[float, float, float]:
        if angle:
            a = math.radians(angle)
            dx, dy = x - pivot[0], y - pivot[1]
            x = pivot[0] + dx * math.cos(a) - dy * math.sin(a)
            y = pivot[1] + dx * math.sin(a) + dy * math.cos(a)
        return offset[0] + x * scale, offset[1] + y * scale, side * scale

    return to_work


def _detect(detector, image: Image.Image) -> list:
    scale = min(MAX_UPSAMPLE, math.sqrt(DETECT_PIXELS / (image.width * image.height)))
    frame = (
        image
        if abs(scale - 1) < 0.05
        else image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BILINEAR)
    )
    rects, scores, _ = detector.run(np.asarray(frame.convert("L")), 0, CANDIDATE_SCORE)
    k = image.width / frame.width
    rects = [dlib.rectangle(*(round(v * k) for v in (r.left(), r.top(), r.right(), r.bottom()))) for r in rects]
    faces = [(r, None, _at()) for r, s in zip(rects, scores, strict=True) if s >= ACCEPT_SCORE]
    boxes = [(f[0].left(), f[0].top(), f[0].right(), f[0].bottom()) for f in faces]
    candidates = [
        (r.left(), r.top(), r.right(), r.bottom()) for r, s in zip(rects, scores, strict=True) if s < ACCEPT_SCORE
    ]
    for box in candidates[:MAX_RETRIES]:
        if any(_overlaps(box, other) for other in boxes):
            continue
        retried = _retry(detector, image, box)
        if retried is not None:
            faces.append(retried)
    return faces


def _overlaps(a: tuple, b: tuple) -> bool:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return False
    return w * h > 0.3 * min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))


def _retry(detector, image: Image.Image, box: tuple):
    side = max(box[2] - box[0], box[3] - box[1]) * 2.5
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    left, top, side = round(cx - side / 2), round(cy - side / 2), round(side)
    crop_scale = RETRY_FACE_PX * 2.5 / side
    size = round(side * crop_scale)
    crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    best, best_score = None, None
    for angle in RETRY_ANGLES:
        rotated = crop.rotate(angle, Image.Resampling.BILINEAR) if angle else crop
        rects, scores, _ = detector.run(np.asarray(rotated.convert("L")), 0, 0.0)
        for rect, score in zip(rects, scores, strict=False):
            near = abs(rect.dcenter().x - size / 2) < size / 4 and abs(rect.dcenter().y - size / 2) < size / 4
            if near and (best_score is None or score > best_score):
                best_score = score
                best = (rect, np.asarray(rotated), _at(1 / crop_scale, angle, (size / 2, size / 2), (left, top)))
    return best
