"""The naming rule (core/naming.py): a default threshold that rises with the
archive's size, an explicit threshold kept exactly, and each match judged;
and the use cases following it over the in-memory fakes. Milliseconds."""

from dataclasses import replace

import pytest

from chalicelib.aws.rekognition import STRANGERS as REKOGNITION_STRANGERS
from chalicelib.core import indexing, limits, naming, people, searching
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.naming import StrangerModel
from chalicelib.embedded.engine import STRANGERS as DLIB_STRANGERS
from tests.support.fakes import FakeEngine, fake_services, photo_of

MODEL = StrangerModel(72.0, 2.5, "a test's")


def test_a_small_archive_keeps_the_usual_default_and_a_larger_one_a_higher_one():
    assert naming.default_threshold(0, MODEL) == naming.default_threshold(1, MODEL) == limits.DEFAULT_THRESHOLD
    sizes = [10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000]
    thresholds = [naming.default_threshold(size, MODEL) for size in sizes]
    assert thresholds == sorted(thresholds) and len(set(thresholds)) == len(thresholds)
    assert thresholds[-1] < 100


@pytest.mark.parametrize("faces", [10, 1_000, 1_000_000, 10_000_000])
@pytest.mark.parametrize("model", [MODEL, DLIB_STRANGERS, REKOGNITION_STRANGERS], ids=["test", "dlib", "rekognition"])
def test_the_default_threshold_is_the_lowest_tenth_that_keeps_strangers_under_the_aim(faces, model):
    threshold = naming.default_threshold(faces, model)
    assert threshold == round(threshold, 1)
    assert naming.expected_strangers(threshold, faces, model) <= naming.MAX_EXPECTED_STRANGERS
    lower = round(threshold - 0.1, 1)
    assert lower < limits.DEFAULT_THRESHOLD or naming.expected_strangers(lower, faces, model) > (
        naming.MAX_EXPECTED_STRANGERS
    )


def test_the_engines_models_give_the_thresholds_the_readme_lists():
    dlib = [naming.default_threshold(n, DLIB_STRANGERS) for n in (20, 1_000, 10_000, 100_000, 1_000_000)]
    assert dlib == [81.2, 83.8, 85.1, 86.3, 87.4]
    aws = [naming.default_threshold(n, REKOGNITION_STRANGERS) for n in (1_000, 10_000, 100_000, 1_000_000, 10**7)]
    assert aws == [80.0, 85.3, 90.2, 94.8, 99.0]


def test_an_asked_threshold_is_kept_exactly_whatever_the_archive():
    decided = naming.decide(1_000_000, MODEL, 80.0)
    assert decided.threshold == 80.0 and decided.asked
    assert decided.reply()["threshold"] == 80.0 and "Asked for" in decided.reply()["thresholdReason"]
    default = naming.decide(1_000_000, MODEL, None)
    assert default.threshold == naming.default_threshold(1_000_000, MODEL) and not default.asked
    assert "1,000,000 faces" in default.reply()["thresholdReason"]


def test_a_match_is_confident_when_few_strangers_would_score_as_high():
    decided = naming.decide(1_000_000, MODEL, 80.0)
    weak, strong = decided.judge(81.0), decided.judge(decided.threshold + 10)
    assert not weak["confident"] and weak["expectedStrangers"] > 1
    assert strong["confident"] and 0 < strong["expectedStrangers"] <= naming.MAX_EXPECTED_STRANGERS
    at_default = naming.decide(1_000_000, MODEL, None)
    assert at_default.judge(at_default.threshold)["confident"]
    assert naming.decide(10, MODEL, None).judge(99.0)["expectedStrangers"] < decided.judge(99.0)["expectedStrangers"]


def test_the_stage_may_set_the_stranger_model_and_a_wrong_one_says_how():
    settings = Settings.from_env({"FACEPRINT_STRANGER_SIMILARITY": " 33, 11 "})
    assert (settings.stranger_model.mean, settings.stranger_model.sd) == (33.0, 11.0)
    assert Settings.from_env({}).stranger_model is None
    for wrong in ("33", "a,b", "33,0", "120,5", "33,11,2"):
        with pytest.raises(ConfigurationError, match="FACEPRINT_STRANGER_SIMILARITY"):
            Settings.from_env({"FACEPRINT_STRANGER_SIMILARITY": wrong})


class LargeEngine(FakeEngine):
    """The fake engine, counting a million faces more, and recording the
    thresholds it is asked to search at."""

    def __init__(self, photos) -> None:
        super().__init__(photos)
        self.thresholds: list[float] = []

    def face_count(self) -> int:
        return super().face_count() + 1_000_000

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        self.thresholds.append(threshold)
        return super().search_faces_by_image(data, threshold, max_faces)


@pytest.fixture
def large():
    svc = fake_services()
    engine = LargeEngine(svc.photos)
    svc = replace(svc, engine=engine)
    indexing.upload_image(svc, "alice.png", photo_of("alice"), {"name": "Alice"})
    return svc


def test_a_search_without_a_threshold_uses_the_default_for_the_archive_and_says_why(large):
    found = searching.search_image(large, photo_of("alice"), None, 10)
    expected = naming.default_threshold(1_000_001, large.engine.stranger_model())
    assert large.engine.thresholds == [expected] and found["threshold"] == expected
    assert "1,000,001 faces" in found["thresholdReason"]
    assert found["matchedFaces"] == ["Alice"]
    (match,) = found["matches"]
    assert match["confident"] is True and match["expectedStrangers"] < naming.MAX_EXPECTED_STRANGERS


def test_a_search_with_a_threshold_asks_the_engine_for_exactly_that(large):
    found = searching.search_image(large, photo_of("alice"), 80.0, 10)
    assert large.engine.thresholds == [80.0] and found["threshold"] == 80.0


def test_people_search_and_face_matches_follow_the_rule_too():
    svc = fake_services()
    indexing.upload_image(svc, "alice.png", photo_of("alice"), {"name": "Alice"})
    indexing.upload_image(svc, "alice2.png", photo_of("alice", shade=1), {})
    people.put_person(svc, "alice", "Alice")
    face_ids = [face["FaceId"] for key in ("alice.png", "alice2.png") for face in svc.records.faces_of(key)]
    people.associate_faces(svc, "alice", face_ids, 75.0)
    expected = naming.default_threshold(svc.engine.face_count(), svc.engine.stranger_model())
    found = people.search_people(svc, photo_of("alice"), None, 10)
    assert found["threshold"] == expected
    assert [(p["personId"], p["confident"]) for p in found["people"]] == [("alice", True)]
    matches = people.face_matches(svc, face_ids[0], None, 10)
    assert matches["threshold"] == expected and matches["matches"][0]["confident"] is True
    assert people.face_matches(svc, face_ids[0], 50.0, 10)["threshold"] == 50.0
