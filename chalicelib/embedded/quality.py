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
- Confidence (0-100): YuNet's score (yunet.py), times 100. The engine keeps
  detections scoring 75 or more (analysis.SCORE_FLOOR).
- Brightness (0-100): the mean luminance of the face's box.
- Sharpness (0-100): the variance of the Laplacian of the face's box, taken
  at most SHARPNESS_SIDE pixels wide (larger faces are averaged down, so a
  big face is not sharper for being big), divided by the box's own variance
  (so a dark or flat face is not blurry for being dark), as 100 x / (x + 0.5).
- Pose (degrees), from YuNet's five landmarks (eye centres, nose tip, mouth
  corners), a rough estimate: Roll from the line through the eyes; Yaw from
  how far the nose tip stands off the line from the eyes' midpoint to the
  mouth's; Pitch from how high the nose tip sits between eyes and mouth.
- Size: the side of the face's (square) box, in pixels of the analysed image.
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
# Pose from YuNet's landmarks. NOSE_DEPTH: how far the nose tip stands out in
# front of the eyes, in eye distances. NOSE_HEIGHT: where the tip sits from
# the eyes (0) to the mouth (1) on a level face, and NOSE_PITCH_DEPTH its
# depth in eyes-to-mouth distances (the shared faces: 0.54 .. 0.65, mean 0.58).
NOSE_DEPTH = 0.5
NOSE_HEIGHT = 0.58
NOSE_PITCH_DEPTH = 0.48


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
#   size         42 (Lawrence3.jpg), 43 (the 30°-rolled inset face of
#                Justin-Trudeau-Barack-Obama-Lawrence.jpg), then 115 .. 667 px
#   confidence   86.8 (the inset face, found in the frame turned), 90.7 .. 95.1
#   brightness   32.5 (smiling-lady.jpg), 41.5 .. 61.0
#   sharpness    42.6 (the inset face), 46.8 .. 72.2
#   |yaw|        at most 14.6 (the inset face); |pitch| at most 8.9
# and the profile beside smiling-lady.jpg's face (which dlib's HOG detector
# never found): yaw 61, confidence 86.1.
# Made-up bad faces (from Keanu-Reeves.jpg, Jim-Carrey.jpg, Mike-Meyers.jpg, Lawrence2.jpg):
#   darkened to 15% / 8% of their light: brightness 6.3 .. 8.9 / 3.3 .. 4.6,
#                confidence 85.6 .. 94.3 (at 3% no face is found at all)
#   Gaussian blur, radius 8 / 16 / 24: sharpness 3.0 .. 35.8 / 6.7 .. 9.7 / 2.4 .. 3.7
#                (Lawrence2.jpg, a 150 px face, is no longer found from radius 16)
#   Keanu shrunk to a 20 / 40 / 45 / 60 px face: size 22 / 41 / 46 / 59
# So AUTO (the LOW bar) keeps every shared face and declines the profile,
# the dark and the strongly blurred (its size bar leaves the smallest shared
# faces room for the box's +-7%); MEDIUM also declines faces under 60 px (the
# two smallest shared faces), HIGH under 80 px, and the inset face's
# sharpness and confidence.
BARS = {
    "LOW": Bar(min_size=36, min_confidence=80, min_brightness=10, min_sharpness=20, max_pose=45),
    "MEDIUM": Bar(min_size=60, min_confidence=85, min_brightness=15, min_sharpness=30, max_pose=35),
    "HIGH": Bar(min_size=80, min_confidence=90, min_brightness=20, min_sharpness=44, max_pose=25),
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
    """YuNet's score (0-1) as a 0-100 confidence."""
    return 100.0 * score


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


def pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(Roll, Yaw, Pitch) in degrees from YuNet's 5 landmarks: the eye on the
    image's left (0), the other eye (1), the nose tip (2), the corners of the
    mouth (3 on the image's left, 4)."""
    points = np.asarray(landmarks, np.float64)
    eyes, mouth = points[0:2].mean(0), points[3:5].mean(0)
    across = points[1] - points[0]
    distance = float(np.hypot(*across)) or 1.0
    cos, sin = across / distance

    def in_face(offset: np.ndarray) -> tuple[float, float]:
        """An offset from the eyes' midpoint in the face's own frame (x along the eyes, y down)."""
        return offset[0] * cos + offset[1] * sin, -offset[0] * sin + offset[1] * cos

    nose_x, nose_y = in_face(points[2] - eyes)
    mouth_x, mouth_y = in_face(mouth - eyes)
    roll = math.degrees(math.atan2(across[1], across[0]))
    yaw = math.degrees(math.atan2((nose_x - mouth_x / 2) / distance, NOSE_DEPTH))
    height = nose_y / mouth_y if mouth_y > 0 else NOSE_HEIGHT
    pitch = math.degrees(math.atan2(height - NOSE_HEIGHT, NOSE_PITCH_DEPTH))
    return roll, yaw, pitch


def turned_to_camera(pose: tuple[float, float, float]) -> bool:
    """Whether a face of this (Roll, Yaw, Pitch) is one a search looks at:
    the LOW bar's pose (a profile's descriptor says little about who it is)."""
    return max(abs(pose[1]), abs(pose[2])) <= BARS["LOW"].max_pose


def measure(gray: np.ndarray, size: float, score: float, pose: tuple[float, float, float]) -> Measures:
    """The measures of one face: `gray` is its box in the analysed image
    (8-bit grayscale), `size` the box's side, `score` YuNet's, `pose` pose()'s."""
    roll, yaw, pitch = pose
    return Measures(size, confidence(score), brightness(gray), sharpness(gray), roll, yaw, pitch)
