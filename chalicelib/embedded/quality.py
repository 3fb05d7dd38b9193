"""Which faces are good enough to index: the embedded engine's answer to
Rekognition's IndexFaces `QualityFilter` and `MaxFaces`, in Rekognition's
vocabulary (UnindexedFace.Reasons). The measures, the bar of each level and
the decision all live here; analysis.py measures each face where its pixels
are (in the worker process) and calls `select`.

Rekognition's rules, as its IndexFaces documentation states them:
- QualityFilter NONE indexes every face found; LOW, MEDIUM and HIGH remove
  the faces below an increasingly strict bar; AUTO (the default) lets the
  service choose its bar. Here AUTO is the LOW bar.
- MaxFaces: if more faces than MaxFaces pass, the lowest-quality ones are
  filtered out first, then the smallest, with reason EXCEEDS_MAX_FACES.

The measures, each on Rekognition's scale:
- Confidence (0-100): the HOG detector's score s as 100 / (1 + e^(-2 (s + 1))).
- Brightness (0-100): the mean luminance of the face's box.
- Sharpness (0-100): the variance of the Laplacian of the face's box, taken
  at most SHARPNESS_SIDE pixels wide (larger faces are averaged down, so a
  big face is not sharper for being big), divided by the box's own variance
  (so a dark or flat face is not blurry for being dark), as 100 x / (x + 0.5).
- Pose (degrees): Roll from the line through the eyes; Yaw and Pitch from
  where the nose sits against the eyes (dlib's 5 landmarks), a rough estimate.
- Size: the side of the face's box, in pixels of the analysed image.
"""

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

# UnindexedFace.Reasons, in the order Rekognition's model lists them.
EXCEEDS_MAX_FACES = "EXCEEDS_MAX_FACES"
EXTREME_POSE = "EXTREME_POSE"
LOW_BRIGHTNESS = "LOW_BRIGHTNESS"
LOW_SHARPNESS = "LOW_SHARPNESS"
LOW_CONFIDENCE = "LOW_CONFIDENCE"
SMALL_BOUNDING_BOX = "SMALL_BOUNDING_BOX"

SHARPNESS_SIDE = 48
_HALF_SHARP = 0.5  # the contrast-normalised Laplacian variance that scores 50
# Pose from 5 landmarks: the nose's offset from the eyes' midpoint, in eye
# distances. NOSE_DEPTH is how far the nose's base stands out in front of
# the eyes, and NOSE_DROP how far below them it sits on a level face.
NOSE_DEPTH = 0.5
NOSE_DROP = 0.8


@dataclass(frozen=True)
class Measures:
    size: float  # side of the face's box, in pixels of the analysed image
    confidence: float  # 0-100
    brightness: float  # 0-100
    sharpness: float  # 0-100
    roll: float = 0.0  # degrees
    yaw: float = 0.0
    pitch: float = 0.0


@dataclass(frozen=True)
class Bar:
    min_size: float
    min_confidence: float
    min_brightness: float
    min_sharpness: float
    max_pose: float  # |Yaw| and |Pitch|, degrees; Roll never counts

    def reasons(self, m: Measures) -> list[str]:
        failed = {
            EXTREME_POSE: max(abs(m.yaw), abs(m.pitch)) > self.max_pose,
            LOW_BRIGHTNESS: m.brightness < self.min_brightness,
            LOW_SHARPNESS: m.sharpness < self.min_sharpness,
            LOW_CONFIDENCE: m.confidence < self.min_confidence,
            SMALL_BOUNDING_BOX: m.size < self.min_size,
        }
        return [reason for reason, failing in failed.items() if failing]


# The bars, calibrated on the shared photos (../shared/faces), figures from
# scripts/quality_figures.py. The 20 faces of people.json measure:
#   size         44 (Lawrence3.jpg), 46 (the 30°-tilted inset face of
#                Justin-Trudeau-Barack-Obama-Lawrence.jpg), then 133 .. 643 px
#   confidence   97.6 (Lawrence2.jpg) .. 99.9
#   brightness   32.4 (smiling-lady.jpg), 40.1 .. 61.7
#   sharpness    40.0 (the inset face), 46.4 .. 70.7
#   |yaw|        at most 19.4 (Lawrence3.jpg); |pitch| at most 16.1
# Made-up bad faces (from Keanu-Reeves.jpg, Jim-Carrey.jpg, Mike-Meyers.jpg, Lawrence2.jpg):
#   darkened to 15% / 8% of their light: brightness 6.4 .. 9.1 / 3.2 .. 4.7
#                (at 3% no face is found at all)
#   Gaussian blur, radius 8 / 16 / 24: sharpness 21 .. 36 / 6.6 .. 8.0 / 1.9 .. 2.7
#                (Lawrence2.jpg, a 155 px face, is no longer found from radius 8)
#   Keanu shrunk to a 40 .. 45 / 60 px face: size 44 .. 45 / 63; to 20 px:
#                never found (HOG's 80 px window, upsampled 2x at most)
# So AUTO (the LOW bar) keeps every shared face and declines the dark and
# the strongly blurred; MEDIUM also declines faces under 60 px (the two
# smallest shared faces), HIGH under 80 px and the inset face's sharpness.
BARS = {
    "LOW": Bar(min_size=40, min_confidence=90, min_brightness=10, min_sharpness=20, max_pose=45),
    "MEDIUM": Bar(min_size=60, min_confidence=94, min_brightness=15, min_sharpness=30, max_pose=35),
    "HIGH": Bar(min_size=80, min_confidence=97, min_brightness=20, min_sharpness=42, max_pose=25),
}
BARS["AUTO"] = BARS["LOW"]
_RANKED = ("LOW", "MEDIUM", "HIGH")


def reasons(m: Measures, quality_filter: str) -> list[str]:
    """Why `quality_filter` declines a face measuring `m`: [] if it passes."""
    return [] if quality_filter == "NONE" else BARS[quality_filter].reasons(m)


def select(faces: list[Measures], quality_filter: str, max_faces: int) -> list[list[str]]:
    """For each face, the reasons it is not indexed ([]: indexed). Faces
    below the bar are declined for what they lack; of the rest, at most
    `max_faces` are kept, lowest quality dropped first, then the smallest."""
    declined = [reasons(m, quality_filter) for m in faces]
    passing = [i for i, why in enumerate(declined) if not why]
    passing.sort(key=lambda i: (_grade(faces[i]), faces[i].size), reverse=True)
    for i in passing[max_faces:]:
        declined[i] = [EXCEEDS_MAX_FACES]
    return declined


def _grade(m: Measures) -> int:
    """How many of LOW, MEDIUM and HIGH a face passes: its quality, coarsely."""
    return sum(not BARS[level].reasons(m) for level in _RANKED)


def confidence(score: float) -> float:
    """HOG detector score (0 is dlib's threshold) as a 0-100 confidence."""
    return 100.0 / (1.0 + math.exp(-2.0 * (score + 1.0)))


def brightness(gray: np.ndarray) -> float:
    """Mean luminance of a face's box (8-bit grayscale), 0-100."""
    return float(gray.mean()) / 255.0 * 100.0 if gray.size else 0.0


def sharpness(gray: np.ndarray) -> float:
    """Contrast-normalised variance of the Laplacian of a face's box, 0-100."""
    if min(gray.shape) < 3:
        return 0.0
    if max(gray.shape) > SHARPNESS_SIDE:
        scale = SHARPNESS_SIDE / max(gray.shape)
        size = (max(3, round(gray.shape[1] * scale)), max(3, round(gray.shape[0] * scale)))
        gray = np.asarray(Image.fromarray(gray).resize(size, Image.Resampling.BOX))
    g = gray.astype(np.float32)
    laplacian = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    x = float(laplacian.var()) / (float(g.var()) + 1.0)
    return 100.0 * x / (x + _HALF_SHARP)


def pose(landmarks: tuple[tuple[float, float], ...]) -> tuple[float, float, float]:
    """(Roll, Yaw, Pitch) in degrees from dlib's 5 landmarks: the corners of
    the eye on the image's right (0, 1), of the other eye (2, 3), and the
    base of the nose (4)."""
    left = np.mean(landmarks[2:4], axis=0)
    right = np.mean(landmarks[0:2], axis=0)
    nose = np.asarray(landmarks[4])
    across = right - left
    distance = float(np.hypot(*across)) or 1.0
    cos, sin = across / distance
    offset = nose - (left + right) / 2
    # The nose's offset in the face's own frame (x along the eyes, y down).
    x = (offset[0] * cos + offset[1] * sin) / distance
    y = (-offset[0] * sin + offset[1] * cos) / distance
    roll = math.degrees(math.atan2(across[1], across[0]))
    yaw = math.degrees(math.atan2(x, NOSE_DEPTH))
    pitch = math.degrees(math.atan2(y - NOSE_DROP, NOSE_DEPTH))
    return roll, yaw, pitch


def measure(gray: np.ndarray, size: float, score: float, landmarks: tuple[tuple[float, float], ...]) -> Measures:
    """The measures of one face: `gray` is its box in the analysed image
    (8-bit grayscale), `size` the box's side, `score` the detector's."""
    roll, yaw, pitch = pose(landmarks)
    return Measures(size, confidence(score), brightness(gray), sharpness(gray), roll, yaw, pitch)
