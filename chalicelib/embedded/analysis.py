"""Face detection, quality measures and descriptors with dlib (HOG
detector, 5-point landmarks, ResNet descriptor), for the embedded engine.
It runs inside the analysis worker processes (workers.py).

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
4. Every face found gets its landmarks and quality measures (quality.py);
   only the faces the quality filter and the per-photo limit keep pay for a
   descriptor. The others come back as declined, with Rekognition's reasons.
"""

import math
from dataclasses import dataclass, field, replace

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

from chalicelib.core.limits import MAX_FACES
from chalicelib.core.pixels import decode_rgb
from chalicelib.embedded import quality

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
    quality: quality.Measures
    descriptor: np.ndarray | None  # None for a declined face
    reasons: tuple[str, ...] = ()  # why it was declined (Rekognition's UnindexedFace.Reasons)


@dataclass(frozen=True)
class Analysis:
    width: int  # of the decoded image; Face boxes are relative to it
    height: int
    faces: list[Face]  # kept, with descriptors, largest first
    declined: list[Face] = field(default_factory=list)  # by the quality filter or the limit, largest first


@dataclass
class Models:
    detector: object
    shapes: object
    descriptors: object


def load_models() -> Models:
    return Models(
        detector=dlib.get_frontal_face_detector(),
        shapes=dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location()),
        descriptors=dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location()),
    )


def analyze(
    models: Models,
    data: bytes,
    largest_only: bool = False,
    quality_filter: str = "NONE",
    max_faces: int = MAX_FACES,
) -> Analysis:
    """The faces of the photo `data`: the largest only (as a search looks
    at), or every face, kept or declined by `quality_filter` and `max_faces`
    as IndexFaces would."""
    image = decode_rgb(data, WORK_PIXELS)
    pixels = np.asarray(image)
    gray = np.asarray(image.convert("L"))
    found = sorted(_detect(models.detector, image), key=lambda f: f.box_area, reverse=True)
    if largest_only:
        found = found[:1]
    located = [f.locate(models, pixels, gray) for f in found]
    decisions = quality.select([face.quality for face, _ in located], quality_filter, max_faces)
    kept, declined = [], []
    for (face, shape), reasons in zip(located, decisions, strict=True):
        if reasons:
            declined.append(replace(face, reasons=tuple(reasons)))
        else:
            kept.append(replace(face, descriptor=_describe(models, shape)))
    return Analysis(image.width, image.height, kept, declined)


def _describe(models: Models, shape: "_Shape") -> np.ndarray:
    return np.array(models.descriptors.compute_face_descriptor(shape.frame, shape.landmarks), dtype=np.float32)


@dataclass(frozen=True)
class _Shape:
    """dlib's landmarks of a face, in the frame they were found in."""

    frame: np.ndarray
    landmarks: object  # dlib.full_object_detection


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

    def locate(self, models: Models, work: np.ndarray, gray: np.ndarray) -> tuple[Face, _Shape]:
        """The face's box, landmarks and quality measures (no descriptor yet)."""
        frame = work if self.frame is None else self.frame
        shape = models.shapes(frame, self.rect)
        points = tuple(self.to_work.point(p.x, p.y) for p in shape.parts())
        cx, cy = self.to_work.point(self.rect.dcenter().x, self.rect.dcenter().y)
        w = self.rect.width() * self.to_work.scale
        h = self.rect.height() * self.to_work.scale
        left, top, right, bottom = _work_box(self)
        box = gray[max(0, round(top)) : max(0, round(bottom)), max(0, round(left)) : max(0, round(right))]
        measures = quality.measure(box, w, self.score, points)
        face = Face(cx - w / 2, cy - h / 2, w, h, self.score, points, measures, None)
        return face, _Shape(frame, shape)


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
