"""Faces, their quality measures and descriptors, for the embedded engine:
YuNet finds the faces, dlib's 5-point model places their landmarks, and
dlib's ResNet describes them (run by onnxruntime: descriptor_net.py). It
runs inside the analysis worker processes (workers.py).

The pipeline (figures: scripts/bench.py and the archive tests):
1. The photo is decoded with at most WORK_PIXELS (large JPEGs decode
   straight at 1/2, 1/4 or 1/8 scale in draft mode).
2. YuNet (yunet.py) looks at a frame of FRAME_SIDE pixels (the long side;
   small photos are upsampled, at most MAX_UPSAMPLE times), and a face is a
   detection scoring SCORE_FLOOR or more. YuNet sees faces of about 10 to
   300 px in its frame, turned up to about 30 degrees in the image's plane,
   so it looks again (SECOND_LOOKS): at the frame halved, for a face filling
   the photo, and at the frame turned by 30 degrees either way, for a small
   face rolled that far (as in the inset of Justin-Trudeau-Barack-Obama-
   Lawrence.jpg). A face found by several looks is kept once, from the look
   that scored it best. A search, which wants the largest face only, skips
   the second looks when the first found a face turned to the camera, and
   none rolled over UPRIGHT_ROLL.
3. Each face gets a square box in the manner of dlib's HOG detector (whose
   boxes the landmark model was trained on, and which the archive's older
   faces carry): BOX_SIDE times the distance from the eyes to the mouth,
   centred on YuNet's five landmarks. dlib's 5-point landmarks are placed in
   that box, in the work image itself, or, for a face rolled more than
   UPRIGHT_ROLL degrees, in a crop turned upright (again, by dlib's own
   measure, when YuNet's landmarks, which understate a strong roll, were
   more than REFINE_ROLL degrees off). Yaw and pitch from YuNet's landmarks,
   roll from dlib's, and the other quality measures follow (quality.py).
4. Only the faces the quality filter and the per-photo limit keep pay for a
   descriptor: the 150x150 chip dlib.get_face_chip cuts from the work image
   along dlib's landmarks, through dlib's ResNet. The others come back as
   declined, with Rekognition's reasons.
"""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import dlib
import numpy as np
from PIL import Image

from chalicelib.core.limits import MAX_FACES
from chalicelib.core.pixels import decode_rgb
from chalicelib.embedded import descriptor_net, model_files, quality
from chalicelib.embedded.descriptor_net import CHIP_PADDING, CHIP_SIZE, DescriptorNet
from chalicelib.embedded.yunet import YuNet

WORK_PIXELS = 4_000_000
FRAME_SIDE = 640
MAX_UPSAMPLE = 1.0
# The lowest YuNet score taken for a face. Measured (issue 23): the real
# faces of the shared and other photos score 0.835 or more; two faces
# painted in a picture, below 0.75.
SCORE_FLOOR = 0.75
# The looks after the first: (the frame's scale, degrees turned counter-clockwise).
SECOND_LOOKS = ((0.5, 0.0), (1.0, 30.0), (1.0, -30.0))
# dlib's HOG box, measured against YuNet's landmarks on the 20 shared faces:
# its side is 2.28 (+-7%) eye-to-mouth distances, its centre a little right
# of and below the landmarks' mean (as a fraction of the side, in the face's frame).
BOX_SIDE = 2.28
BOX_OFFSET = (0.015, 0.01)
UPRIGHT_ROLL = 15.0
REFINE_ROLL = 8.0
# A rolled face's landmarks are found in a crop where the face measures
# between these sides, in pixels (small faces enlarged, large ones reduced).
TURNED_FACE_PX = (100.0, 300.0)
MODEL_VERSION = f"{descriptor_net.MODEL}/yunet-2023mar"


@dataclass(frozen=True)
class Face:
    left: float  # pixels in the decoded (work) image
    top: float
    width: float
    height: float
    score: float  # YuNet's score, 0-1
    landmarks: tuple[tuple[float, float], ...]  # dlib's 5 points, in the work image
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
    detector: YuNet
    shapes: object  # dlib.shape_predictor
    descriptors: DescriptorNet


def load_models() -> Models:
    return Models(
        detector=YuNet(),
        shapes=dlib.shape_predictor(str(model_files.landmarks_path())),
        descriptors=DescriptorNet(),
    )


def analyze(
    models: Models,
    data: bytes,
    largest_only: bool = False,
    quality_filter: str = "NONE",
    max_faces: int = MAX_FACES,
    searching: bool = False,
    stages: dict[str, float] | None = None,
) -> Analysis:
    """The faces of the photo `data`, kept or declined by `quality_filter`
    and `max_faces` as IndexFaces would. `searching`: only the faces turned
    to the camera (a profile's descriptor says little about who it is), as
    a search looks at them; `largest_only` (a search too): the largest of them.
    `stages` (scripts/bench.py) adds the seconds each stage took to it."""
    lap = _Laps(stages)
    image = decode_rgb(data, WORK_PIXELS)
    lap("decode")
    searching = searching or largest_only
    enough = _upright_faces_found if largest_only else None
    faces = sorted((_Seen(found) for found in _detect(models.detector, image, enough)), key=_area, reverse=True)
    if searching:
        faces = [face for face in faces if quality.turned_to_camera(face.pose)]
    if largest_only:
        faces = faces[:1]
    lap("detect")
    pixels = np.asarray(image)
    located = [_locate(models, image, pixels, face) for face in faces]
    decisions = quality.select([face.quality for face, _ in located], quality_filter, max_faces)
    kept = [(face, shape) for (face, shape), reasons in zip(located, decisions, strict=True) if not reasons]
    lap("landmarks")
    chips = np.array([dlib.get_face_chip(pixels, shape, CHIP_SIZE, CHIP_PADDING) for _, shape in kept])
    descriptors = models.descriptors.compute(chips.reshape(-1, CHIP_SIZE, CHIP_SIZE, 3))
    lap("descriptor")
    described = [replace(face, descriptor=d) for (face, _), d in zip(kept, descriptors, strict=True)]
    declined = [
        replace(face, reasons=tuple(reasons)) for (face, _), reasons in zip(located, decisions, strict=True) if reasons
    ]
    return Analysis(image.width, image.height, described, declined)


class _Laps:
    """Adds the time since the last lap to `stages[stage]` (if stages is a dict)."""

    def __init__(self, stages: dict[str, float] | None) -> None:
        self._stages = stages
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        if self._stages is not None:
            now = time.perf_counter()
            self._stages[stage] = self._stages.get(stage, 0.0) + now - self._last
            self._last = now


# --- detection ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    score: float
    points: np.ndarray  # YuNet's five landmarks, in work-image pixels


def _detect(detector: YuNet, image: Image.Image, enough: Callable[[list[_Found]], bool] | None) -> list[_Found]:
    """Every face YuNet finds in the first look and the second ones (none
    if `enough` says the first found enough), each once."""
    scale = min(MAX_UPSAMPLE, FRAME_SIDE / max(image.width, image.height))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # A box filter by a whole factor, then nearest-neighbour to the size: a
    # sixth of a bilinear resize's time, and the same faces found.
    reduce = math.floor(1 / scale)
    frame = (image.reduce(reduce) if reduce > 1 else image).resize(size, Image.Resampling.NEAREST)
    found = _look(detector, frame, scale, 0.0)
    if enough is None or not enough(found):
        for factor, angle in SECOND_LOOKS:
            small = frame.reduce(round(1 / factor)) if factor < 1 else frame
            found += _look(detector, small, scale * small.width / frame.width, angle)
    found.sort(key=lambda f: f.score, reverse=True)
    faces: list[_Found] = []
    for candidate in found:
        if not any(_same_face(candidate, face) for face in faces):
            faces.append(candidate)
    return faces


def _look(detector: YuNet, frame: Image.Image, scale: float, angle: float) -> list[_Found]:
    """YuNet's faces in `frame` (`scale` times the work image) turned by
    `angle` degrees about its centre, their landmarks in work-image pixels.
    Turning crops the corners (nearest-neighbour: 5x faster than bilinear,
    and the same faces)."""
    turned = frame.rotate(angle, Image.Resampling.NEAREST) if angle else frame
    centre = (frame.width / 2, frame.height / 2)
    return [
        _Found(d.score, _turned(d.landmarks, angle, centre) / scale)
        for d in detector.detect(np.asarray(turned), SCORE_FLOOR)
    ]


def _turned(points: np.ndarray, angle: float, centre: tuple[float, float]) -> np.ndarray:
    """Points of an image turned counter-clockwise by `angle` degrees about
    `centre` (PIL's rotate), where they were before it turned."""
    if not angle:
        return points
    a = math.radians(angle)
    offset = points - centre
    x = offset[:, 0] * math.cos(a) - offset[:, 1] * math.sin(a)
    y = offset[:, 0] * math.sin(a) + offset[:, 1] * math.cos(a)
    return np.stack([x, y], 1) + centre


def _same_face(a: _Found, b: _Found) -> bool:
    """Two looks' detections are one face if their landmarks' centres are
    closer than the larger face's eyes-to-mouth distance: a face seen
    turned away from upright gets rougher landmarks, and two faces side by
    side stand at least a box (2.3 such distances) apart."""
    reach = max(_eyes_to_mouth(a.points), _eyes_to_mouth(b.points))
    return float(np.hypot(*(a.points.mean(0) - b.points.mean(0)))) < reach


def _eyes_to_mouth(points: np.ndarray) -> float:
    return float(np.hypot(*(points[3:5].mean(0) - points[0:2].mean(0))))


def _upright_faces_found(found: list[_Found]) -> bool:
    """Whether the first look is enough for a search: it found a face turned
    to the camera, and none of those it found is rolled over UPRIGHT_ROLL
    (such a face's landmarks are better from a look turned with it)."""
    poses = [quality.pose(f.points) for f in found]
    turned = [pose for pose in poses if quality.turned_to_camera(pose)]
    return bool(turned) and all(abs(pose[0]) <= UPRIGHT_ROLL for pose in turned)


# --- each face ------------------------------------------------------------------------------------


class _Seen:
    """A face as YuNet saw it: its score, landmarks, pose and HOG-like box."""

    def __init__(self, found: _Found) -> None:
        self.score = found.score
        self.points = found.points
        self.pose = quality.pose(found.points)
        roll = math.radians(self.pose[0])
        self.side = BOX_SIDE * _eyes_to_mouth(found.points)
        dx, dy = BOX_OFFSET[0] * self.side, BOX_OFFSET[1] * self.side
        x, y = (float(v) for v in found.points.mean(0))  # plain floats: the records are JSON and DynamoDB items
        self.centre = (x + dx * math.cos(roll) - dy * math.sin(roll), y + dx * math.sin(roll) + dy * math.cos(roll))


def _area(face: _Seen) -> float:
    return face.side**2


def _locate(models: Models, image: Image.Image, pixels: np.ndarray, face: _Seen) -> tuple[Face, object]:
    """The face's box, dlib's landmarks and the quality measures (no
    descriptor yet), with dlib's full_object_detection for its chip."""
    shape = _landmarks(models, image, pixels, face, face.pose[0])
    roll = _roll(shape)
    if abs(roll) > UPRIGHT_ROLL and abs(roll - face.pose[0]) > REFINE_ROLL:
        # YuNet's landmarks understate a strong roll: turn by dlib's own measure, once.
        shape = _landmarks(models, image, pixels, face, roll)
        roll = _roll(shape)
    cx, cy = face.centre
    half = face.side / 2
    left, top = max(0, round(cx - half)), max(0, round(cy - half))
    right, bottom = min(image.width, round(cx + half)), min(image.height, round(cy + half))
    inside = right > left and bottom > top
    gray = np.asarray(image.crop((left, top, right, bottom)).convert("L")) if inside else np.zeros((0, 0), np.uint8)
    measures = quality.measure(gray, face.side, face.score, (roll, *face.pose[1:]))
    points = tuple((float(p.x), float(p.y)) for p in shape.parts())
    return Face(cx - half, cy - half, face.side, face.side, face.score, points, measures, None), shape


def _roll(shape) -> float:
    """The roll of dlib's landmarks: the line from the eye on the image's
    left (its points 2 and 3) to the other (0 and 1), in degrees."""
    p = [(point.x, point.y) for point in shape.parts()]
    dx = (p[0][0] + p[1][0] - p[2][0] - p[3][0]) / 2
    dy = (p[0][1] + p[1][1] - p[2][1] - p[3][1]) / 2
    return math.degrees(math.atan2(dy, dx))


def _landmarks(models: Models, image: Image.Image, pixels: np.ndarray, face: _Seen, roll: float):
    """dlib's 5-point landmarks (a full_object_detection in the work image),
    found in a crop turned by `roll` when it is over UPRIGHT_ROLL."""
    cx, cy = face.centre
    half = face.side / 2
    rect = dlib.rectangle(round(cx - half), round(cy - half), round(cx + half), round(cy + half))
    if abs(roll) <= UPRIGHT_ROLL:
        return models.shapes(pixels, rect)
    # In a crop turned upright, 2.5 sides wide, where the face measures TURNED_FACE_PX.
    scale = min(max(face.side, TURNED_FACE_PX[0]), TURNED_FACE_PX[1]) / face.side
    side = round(face.side * 2.5)
    left, top = round(cx - side / 2), round(cy - side / 2)
    size = max(1, round(side * scale))
    # crop() pads with black where the region leaves the photo.
    crop = image.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BILINEAR)
    upright = crop.rotate(roll, Image.Resampling.BILINEAR)
    half_in_crop = half * scale
    shape = models.shapes(
        np.asarray(upright),
        dlib.rectangle(*(round(size / 2 + s * half_in_crop) for s in (-1, -1, 1, 1))),
    )
    found = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
    points = _turned(found, roll, (size / 2, size / 2)) / scale + (left, top)
    return dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in points])
