"""The embedded engine's analysis (chalicelib/embedded/analysis.py) on real
and made-up photos: rolled, small and close-up faces are found and keep
their identity, a profile is declined and never searched, a search looks
no further than it needs, and each stage is timed."""

import numpy as np
import pytest
from PIL import Image

from chalicelib.embedded import analysis, quality
from tests.support import imagegen
from tests.support.photos import photo

pytestmark = pytest.mark.slow

KEANU = "Keanu-Reeves.jpg"
KEANU_FACE = (1062, 389, 609)  # left, top and side of the face's box in the photo


@pytest.fixture(scope="module")
def models() -> analysis.Models:
    return analysis.load_models()


@pytest.fixture(scope="module")
def keanu(models) -> np.ndarray:
    (face,) = analysis.analyze(models, photo(KEANU)).faces
    return face.descriptor


def keanu_in_a_scene(side: int, roll: float, canvas: tuple[int, int] = (960, 720)) -> bytes:
    """Keanu's face, `side` px, turned `roll` degrees counter-clockwise, on a plain background."""
    left, top, face = KEANU_FACE
    margin = face * 3 // 4
    crop = imagegen.shared(KEANU).crop((left - margin, top - margin, left + face + margin, top + face + margin))
    scale = side / face
    small = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.LANCZOS)
    turned = small.rotate(roll, Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    scene = Image.new("RGB", canvas, (128, 128, 128))
    scene.paste(turned, (canvas[0] // 3 - turned.width // 2, canvas[1] // 2 - turned.height // 2))
    return imagegen.jpeg(scene)


@pytest.mark.parametrize("side, roll", [(40, 30), (40, -45), (60, 60), (120, -60), (240, 75)])
def test_a_rolled_face_is_found_and_is_still_its_person(models, keanu, side, roll):
    (face,) = analysis.analyze(models, keanu_in_a_scene(side, roll)).faces
    assert face.quality.roll == pytest.approx(-roll, abs=8)  # the image's y axis points down
    assert np.linalg.norm(face.descriptor - keanu) < 0.4  # dlib's same-person cut-off: 0.6


def test_a_face_filling_the_photo_is_found_by_the_halved_frame(models, keanu):
    left, top, side = KEANU_FACE
    margin = side // 20
    close_up = imagegen.shared(KEANU).crop((left - margin, top - margin, left + side + margin, top + side + margin))
    scale = analysis.FRAME_SIDE / close_up.width
    frame = close_up.resize((analysis.FRAME_SIDE, analysis.FRAME_SIDE), Image.Resampling.BILINEAR)
    assert analysis._look(models.detector, frame, scale, 0.0) == []  # over YuNet's ~300 px
    (face,) = analysis.analyze(models, imagegen.jpeg(close_up)).faces
    assert np.linalg.norm(face.descriptor - keanu) < 0.4  # its chip reaches past the photo


def test_a_profile_is_declined_for_its_pose_and_never_searched(models):
    name = "smiling-lady.jpg"  # the smiling woman, and beside her another in profile
    indexed = analysis.analyze(models, photo(name), quality_filter="AUTO")
    assert len(indexed.faces) == 1
    (profile,) = indexed.declined
    assert quality.EXTREME_POSE in profile.reasons and abs(profile.quality.yaw) > 45
    assert profile.width > indexed.faces[0].width  # the larger of the two: no search may take it
    (searched,) = analysis.analyze(models, photo(name), searching=True).faces
    (largest,) = analysis.analyze(models, photo(name), largest_only=True).faces
    assert searched.left == largest.left == indexed.faces[0].left


class _Counting:
    """The detector, counting its looks."""

    def __init__(self, detector) -> None:
        self.detector, self.looks = detector, 0

    def detect(self, rgb, threshold):
        self.looks += 1
        return self.detector.detect(rgb, threshold)


def test_a_search_for_the_largest_face_looks_again_only_if_it_found_no_upright_face(models):
    counting = _Counting(models.detector)
    searching = analysis.Models(counting, models.shapes, models.descriptors)
    every_look = 1 + len(analysis.SECOND_LOOKS)
    analysis.analyze(searching, photo(KEANU), largest_only=True)
    assert counting.looks == 1
    analysis.analyze(searching, photo("no-face.jpg"), largest_only=True)
    assert counting.looks == 1 + every_look
    # Found rolled: its landmarks are better from the look turned with it.
    analysis.analyze(searching, keanu_in_a_scene(240, 30), largest_only=True)
    assert counting.looks == 1 + 2 * every_look
    analysis.analyze(searching, photo(KEANU))  # indexing looks everywhere
    assert counting.looks == 1 + 3 * every_look


def test_each_stage_is_timed(models):
    stages: dict[str, float] = {}
    analysis.analyze(models, photo("Keanu-Avril-Mike.jpg"), stages=stages)
    assert set(stages) == {"decode", "detect", "landmarks", "descriptor"}
    assert all(seconds > 0 for seconds in stages.values())


def test_boxes_and_measures_are_plain_floats(models):
    """They go into JSON records and DynamoDB items (Decimal(repr(x))), where numpy's floats do not."""
    result = analysis.analyze(models, photo("smiling-lady.jpg"), quality_filter="AUTO")
    for face in result.faces + result.declined:
        numbers = [face.left, face.top, face.width, face.height, face.score, *vars(face.quality).values()]
        assert {type(n) for n in numbers} == {float}
