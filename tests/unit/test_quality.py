"""The quality filter's decisions (chalicelib/embedded/quality.py) on
made-up measurements, its measures on made-up pixels, and its settings."""

import numpy as np
import pytest
from PIL import Image, ImageFilter

from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.embedded import quality
from chalicelib.embedded.quality import BARS, Measures, reasons, select

GOOD = Measures(size=300, confidence=94.5, brightness=45, sharpness=55, roll=5, yaw=3, pitch=-4)
LEVELS = ("AUTO", "LOW", "MEDIUM", "HIGH")


def face(**changes) -> Measures:
    return Measures(**{**GOOD.__dict__, **changes})


@pytest.mark.parametrize("level", ("NONE", *LEVELS))
def test_a_good_face_passes_every_level(level):
    assert reasons(GOOD, level) == []


@pytest.mark.parametrize(
    "bad, reason",
    [
        (face(size=30), "SMALL_BOUNDING_BOX"),
        (face(confidence=78), "LOW_CONFIDENCE"),
        (face(brightness=4), "LOW_BRIGHTNESS"),
        (face(sharpness=5), "LOW_SHARPNESS"),
        (face(yaw=60), "EXTREME_POSE"),
        (face(pitch=-55), "EXTREME_POSE"),
    ],
)
def test_each_shortcoming_is_declined_for_its_reason_at_every_level_but_none(bad, reason):
    for level in LEVELS:
        assert reasons(bad, level) == [reason], level
    assert reasons(bad, "NONE") == []


def test_a_tilted_head_is_not_an_extreme_pose():
    assert reasons(face(roll=40), "HIGH") == []


def test_a_face_can_be_declined_for_several_reasons_in_rekognitions_order():
    assert reasons(face(size=30, brightness=4, yaw=70), "AUTO") == [
        "EXTREME_POSE",
        "LOW_BRIGHTNESS",
        "SMALL_BOUNDING_BOX",
    ]


def test_the_levels_are_increasingly_strict_and_auto_is_the_low_bar():
    low, medium, high = BARS["LOW"], BARS["MEDIUM"], BARS["HIGH"]
    for bar in ("min_size", "min_confidence", "min_brightness", "min_sharpness"):
        assert getattr(low, bar) < getattr(medium, bar) < getattr(high, bar), bar
    assert low.max_pose > medium.max_pose > high.max_pose
    assert BARS["AUTO"] == low


def test_a_50_px_face_passes_the_default_bar_but_not_medium():
    small = face(size=50)
    assert (reasons(small, "AUTO"), reasons(small, "MEDIUM")) == ([], ["SMALL_BOUNDING_BOX"])


def test_over_max_faces_the_smallest_are_dropped_when_quality_is_equal():
    faces = [face(size=200), face(size=400), face(size=300)]
    assert select(faces, "AUTO", 2) == [["EXCEEDS_MAX_FACES"], [], []]


def test_over_max_faces_the_lowest_quality_goes_before_the_smallest():
    big_but_blurry = face(size=500, sharpness=25)  # passes LOW only
    faces = [big_but_blurry, face(size=200), face(size=150)]
    assert select(faces, "AUTO", 2) == [["EXCEEDS_MAX_FACES"], [], []]
    assert select(faces, "NONE", 1) == [["EXCEEDS_MAX_FACES"], [], ["EXCEEDS_MAX_FACES"]]


def test_faces_below_the_bar_keep_their_reasons_and_leave_room_under_max_faces():
    faces = [face(brightness=3), face(size=100)]
    assert select(faces, "AUTO", 1) == [["LOW_BRIGHTNESS"], []]


def test_no_filter_and_a_high_limit_keep_everything():
    faces = [face(size=30, brightness=3), GOOD]
    assert select(faces, "NONE", 100) == [[], []]


def _pattern(side: int) -> np.ndarray:
    """A sharp-edged test card: squares of two grays."""
    y, x = np.mgrid[0:side, 0:side]
    return np.where(((x // (side // 8)) + (y // (side // 8))) % 2, 170, 60).astype(np.uint8)


def test_sharpness_drops_with_blur_but_not_with_size_or_darkness():
    card = _pattern(400)
    sharp = quality.sharpness(card)
    blurred = quality.sharpness(np.asarray(Image.fromarray(card).filter(ImageFilter.GaussianBlur(12))))
    assert blurred < sharp / 3
    assert quality.sharpness(_pattern(96)) == pytest.approx(sharp, rel=0.25)
    assert quality.sharpness((card // 4).astype(np.uint8)) == pytest.approx(sharp, rel=0.1)


def test_brightness_is_the_mean_light_of_the_face_from_0_to_100():
    assert quality.brightness(np.zeros((50, 50), np.uint8)) == 0
    assert quality.brightness(np.full((50, 50), 255, np.uint8)) == 100


def _landmarks(nose_dx: float = 0.0, nose_height: float = quality.NOSE_HEIGHT, angle: float = 0.0) -> np.ndarray:
    """YuNet's 5 points for eyes 100 px apart and the mouth 100 px below
    them, the nose tip off the middle by `nose_dx` eye distances and at
    `nose_height` of the way from the eyes to the mouth, the whole face
    turned by `angle` degrees in the image."""
    points = [(-50, 0), (50, 0), (nose_dx * 100, nose_height * 100), (-40, 100), (40, 100)]
    a = np.radians(angle)
    return np.array([(200 + x * np.cos(a) - y * np.sin(a), 200 + x * np.sin(a) + y * np.cos(a)) for x, y in points])


def test_a_frontal_face_has_no_yaw_nor_pitch_however_it_is_tilted():
    for angle in (0, 30, -45):
        roll, yaw, pitch = quality.pose(_landmarks(angle=angle))
        assert (roll, yaw, pitch) == pytest.approx((angle, 0, 0), abs=1e-6)


def test_a_nose_off_the_middle_is_a_turned_head():
    _, yaw, _ = quality.pose(_landmarks(nose_dx=0.5))
    _, other_way, _ = quality.pose(_landmarks(nose_dx=-0.5, angle=20))
    assert yaw == pytest.approx(45) and other_way == pytest.approx(-45)
    _, _, pitch = quality.pose(_landmarks(nose_height=quality.NOSE_HEIGHT - quality.NOSE_PITCH_DEPTH))
    assert pitch == pytest.approx(-45)


def test_a_search_looks_at_faces_turned_to_the_camera_not_at_profiles():
    assert quality.turned_to_camera(quality.pose(_landmarks(nose_dx=0.3, angle=40)))
    assert not quality.turned_to_camera(quality.pose(_landmarks(nose_dx=0.95)))  # a profile: yaw 62
    assert not quality.turned_to_camera((0.0, 0.0, -50.0))


def test_confidence_is_the_detector_score_in_percent():
    assert quality.confidence(0.75) == pytest.approx(75) and quality.confidence(1.0) == pytest.approx(100)


def test_the_settings_take_a_known_filter_and_a_limit_from_1_to_100():
    settings = Settings.from_env({"FACEPRINT_QUALITY_FILTER": "medium", "FACEPRINT_MAX_FACES": "5"})
    assert (settings.quality_filter, settings.max_faces) == ("MEDIUM", 5)
    for name, value in [
        ("FACEPRINT_QUALITY_FILTER", "STRICT"),
        ("FACEPRINT_MAX_FACES", "101"),
        ("FACEPRINT_MAX_FACES", "0"),
    ]:
        with pytest.raises(ConfigurationError, match=name):
            Settings.from_env({name: value})
