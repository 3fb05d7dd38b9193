"""The naming rule (core/naming.py): identities judged by their lead over
the runner-up for the archive's size, an explicit threshold kept exactly,
nothing dropped; and the use cases following it over the in-memory fakes,
with an engine whose similarities the tests set. Milliseconds."""

import math
from dataclasses import replace

import numpy as np
import pytest

from chalicelib.aws.rekognition import STRANGERS as REKOGNITION_STRANGERS
from chalicelib.core import indexing, naming, people, searching
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.naming import Identity, StrangerModel
from chalicelib.embedded.engine import STRANGERS as DLIB_STRANGERS
from chalicelib.ops.memory import FakeEngine, FakePeople, fake_services, photo_of

MILLION = 1_000_000


def known(label: str, similarity: float, faces: int = 1) -> Identity:
    return Identity(f"name:{label}", label, True, similarity, faces)


def unnamed(label: str, similarity: float) -> Identity:
    return Identity(f"face:{label}", label, False, similarity, 1)


def named(identities: list[Identity], faces: int, floor: float | None = None, model=DLIB_STRANGERS) -> list[str]:
    return [j.identity.label for j in naming.judge(identities, faces, model, floor) if j.confident]


def test_the_lead_a_name_needs_falls_slowly_with_the_archive_and_is_the_readme_s():
    leads = [round(naming.margin_needed(n, DLIB_STRANGERS), 2) for n in (1_000, 10_000, 100_000, MILLION)]
    assert leads == [1.88, 1.66, 1.5, 1.37]
    assert round(naming.margin_needed(MILLION, REKOGNITION_STRANGERS), 1) == 9.4  # its spread is its sd, 11


def test_in_a_million_faces_the_right_person_leading_the_strangers_is_named_where_a_threshold_withheld_it():
    strangers = [known(f"stranger {i}", 80.5 - 0.2 * i) for i in range(5)]
    assert named([known("Alice", 84.0), *strangers], MILLION, floor=79.0) == ["Alice"]
    # The previous rule: every match at 87.4, the default threshold for a million faces.
    assert 84.0 < 87.4


def test_a_face_that_leads_the_strangers_by_less_than_the_margin_is_not_named():
    strangers = [known(f"stranger {i}", 80.5 - 0.2 * i) for i in range(5)]
    (alice, *_) = naming.judge([known("Alice", 81.5), *strangers], MILLION, DLIB_STRANGERS, 79.0)
    assert not alice.confident and not alice.above_strangers
    assert alice.runner_up == 80.5 and alice.expected_strangers > naming.MAX_EXPECTED_STRANGERS
    assert "needs 1.4" in alice.reason


def test_under_the_base_threshold_nothing_is_named_however_far_it_leads():
    assert named([known("Alice", 79.9), known("Bob", 60.0)], 10) == []


def test_when_the_person_is_not_there_the_best_of_n_strangers_is_named_about_once_in_a_hundred_searches():
    """In the rule's own tail (one query's strangers normal, with the
    model's spread, at a level that puts the best of N above 80 every time:
    the worst case) the best and second best of N strangers, drawn exactly
    as order statistics (Renyi: the j-th largest of N uniforms is S_j /
    S_N+1): the best is named in about 1% of the searches (1.3% at 10,000
    faces, where the tail is thinnest), and half the margin would name it in
    many more."""
    rng = np.random.default_rng(21)
    model = replace(DLIB_STRANGERS, mean=76.0)
    for faces in (10_000, 100_000, MILLION):
        trials = 4000
        tail = np.cumsum(rng.exponential(size=(trials, 3)), axis=1) / faces
        scores = [[model.mean + model.tail * -naming._STANDARD.inv_cdf(t) for t in row] for row in tail]
        false = sum(len(named([known("s1", a), known("s2", b)], faces, floor=c, model=model)) for a, b, c in scores)
        assert 0 < false / trials <= 0.015, (faces, false)
        halved = sum(a - b >= naming.margin_needed(faces, model) / 2 for a, b, _ in scores)
        assert halved / trials > 0.05


def test_a_look_alike_as_close_as_the_right_person_leaves_both_unnamed():
    strangers = [known(f"stranger {i}", 80.5 - 0.2 * i) for i in range(5)]
    judged = naming.judge([known("Alice", 84.0), known("Alicia", 83.6), *strangers], MILLION, DLIB_STRANGERS, 79.0)
    alice, alicia = judged[:2]
    assert alice.above_strangers and alicia.above_strangers
    assert not alice.confident and not alicia.confident
    assert alice.reason.startswith("Alicia is as close") and alicia.reason == "Alice is closer"
    # Clear of the look-alike by the margin, Alice is named and Alicia is not.
    assert named([known("Alice", 86.0), known("Alicia", 83.6), *strangers], MILLION, 79.0) == ["Alice"]


def test_a_stranger_with_several_faces_near_the_query_is_no_more_a_name_than_with_one():
    crowd = [known("stranger with five photos", 81.2, faces=5), known("stranger", 80.9), known("another", 80.7)]
    assert named(crowd, MILLION, floor=79.0) == []


def test_faces_without_a_name_that_stand_above_the_strangers_are_all_named_as_they_always_were():
    photos = [unnamed("Keanu reeves", 95.0), unnamed("Keanu avril mike", 94.0), unnamed("Keanu avril lawrence", 93.5)]
    assert named([*photos, known("Avril", 75.0)], 9) == ["Keanu reeves", "Keanu avril mike", "Keanu avril lawrence"]


def test_a_face_without_a_name_clearly_closer_than_the_best_person_keeps_that_person_unnamed():
    judged = naming.judge([unnamed("Img 1", 92.0), known("Alice", 84.0), known("s", 80.5)], MILLION, DLIB_STRANGERS, 79)
    assert [j.confident for j in judged] == [True, False, False]
    assert "without a name" in judged[1].reason


def test_in_a_small_archive_the_previous_rule_s_evidence_still_names_what_it_named():
    # 81.5 among 20 faces: 0.006 strangers expected by the model, though it leads the next by less than 3.
    assert named([known("Alice", 81.5), known("Bob", 79.0)], 20) == ["Alice"]


def test_a_lone_identity_is_judged_by_the_model_alone():
    assert named([known("Alice", 90.0)], 3) == ["Alice"]
    assert named([known("Alice", 90.0)], 3, model=StrangerModel(90.0, 2.0, "close strangers")) == []


def test_the_stage_may_set_the_stranger_model_and_its_spread_and_a_wrong_one_says_how():
    settings = Settings.from_env({"FACEPRINT_STRANGER_SIMILARITY": " 33, 11 "})
    assert (settings.stranger_model.mean, settings.stranger_model.sd, settings.stranger_model.tail) == (33, 11, 11)
    spread = Settings.from_env({"FACEPRINT_STRANGER_SIMILARITY": "33,11,6"}).stranger_model
    assert spread.tail == 6.0 and spread.as_dict()["spread"] == 6.0
    assert Settings.from_env({}).stranger_model is None
    for wrong in ("33", "a,b", "33,0", "120,5", "33,11,0", "33,11,2,1"):
        with pytest.raises(ConfigurationError, match="FACEPRINT_STRANGER_SIMILARITY"):
            Settings.from_env({"FACEPRINT_STRANGER_SIMILARITY": wrong})


# --- the use cases, over an engine whose similarities the tests set ------------------------


class ScoredEngine(FakeEngine):
    """The fake engine, with `extra` faces more than it holds (a large
    archive) and every face scoring `scores[its person]` against any query
    (60 if unset), the nearest first; it records the thresholds asked."""

    def __init__(self, photos, scores: dict[str, float], extra: int = 0) -> None:
        super().__init__(photos)
        self.scores, self.extra = scores, extra
        self.thresholds: list[float] = []

    def face_count(self) -> int:
        return super().face_count() + self.extra

    def stranger_model(self) -> StrangerModel:
        return DLIB_STRANGERS

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        self.thresholds.append(threshold)
        with self._lock:
            faces = list(self.faces.values())
        scored = sorted(((self.scores.get(f["_person"], 60.0), f) for f in faces), key=lambda pair: -pair[0])
        return {
            "SearchedFaceBoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.0, "Top": 0.1},
            "SearchedFaceConfidence": 99.0,
            "FaceMatches": [
                {"Similarity": score, "Face": {k: v for k, v in face.items() if k != "_person"}}
                for score, face in scored
                if score >= threshold
            ][:max_faces],
            "FaceModelVersion": "fake",
        }

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        return [self.search_faces_by_image(data, threshold, max_faces)]


def archive(scores: dict[str, float], extra: int = MILLION):
    """A photo of each person of `scores`, named as them (capitalised), in
    an archive of `extra` faces more."""
    svc = fake_services()
    engine = ScoredEngine(svc.photos, scores, extra)
    svc = replace(svc, engine=engine, people=FakePeople(engine))
    for person in scores:
        indexing.upload_image(svc, f"{person}.png", photo_of(person), {"name": person.capitalize()})
    return svc


STRANGERS_AT_80 = {f"stranger{i}": 80.5 - 0.2 * i for i in range(5)}


def test_a_default_search_names_the_right_person_ahead_of_a_million_strangers_and_says_why():
    svc = archive({"alice": 84.0, **STRANGERS_AT_80})
    found = searching.search_image(svc, photo_of("alice"), None, 10)
    assert svc.engine.thresholds == [0.0]  # the nearest faces, whatever their similarity: the runner-up too
    assert found["matchedFaces"] == ["Alice"] and found["threshold"] == naming.BASE_THRESHOLD
    (match,) = found["matches"]
    assert match["confident"] is True and match["expectedStrangers"] <= naming.MAX_EXPECTED_STRANGERS
    (alice,) = found["identities"]
    assert alice["label"] == "Alice" and alice["runnerUp"] == 80.5 and alice["margin"] == 3.5
    assert alice["confident"] is True and alice["reason"].startswith("named")
    assert [m["Face"]["FaceId"] for m in found["faces"]["FaceMatches"]] == [match["FaceId"]]
    assert "1,000,006 faces" in found["thresholdReason"]


def test_a_likely_name_short_of_the_margin_comes_back_flagged_never_as_an_empty_answer():
    svc = archive({"alice": 81.0, **STRANGERS_AT_80})
    found = searching.search_image(svc, photo_of("alice"), None, 10)
    assert found["matchedFaces"] == []
    assert [(m["label"], m["confident"]) for m in found["matches"]] == [("Alice", False)]
    assert found["identities"][0]["confident"] is False and found["identities"][0]["margin"] == 0.5


def test_an_asked_threshold_still_gets_every_match_at_or_above_it_each_judged():
    svc = archive({"alice": 84.0, **STRANGERS_AT_80})
    found = searching.search_image(svc, photo_of("alice"), 80.0, 10)
    assert found["threshold"] == 80.0 and found["thresholdReason"].startswith("Asked for")
    assert found["matchedFaces"] == ["Alice", "Stranger0", "Stranger1", "Stranger2"]
    assert [m["confident"] for m in found["matches"]] == [True, False, False, False]
    assert len(found["faces"]["FaceMatches"]) == 4
    assert searching.search_image(svc, photo_of("alice"), 80.0, 2)["matchedFaces"] == ["Alice", "Stranger0"]


def test_a_look_alike_person_keeps_the_default_from_naming_either_and_both_are_shown():
    svc = archive({"alice": 84.0, "alicia": 83.6, **STRANGERS_AT_80})
    found = searching.search_image(svc, photo_of("alice"), None, 10)
    assert found["matchedFaces"] == []
    assert [(i["label"], i["confident"]) for i in found["identities"]] == [("Alice", False), ("Alicia", False)]


def test_every_face_of_a_photo_is_judged_the_same_way():
    svc = archive({"alice": 84.0, **STRANGERS_AT_80})
    every = searching.search_every_face(svc, photo_of("alice"), None, 10)
    (face,) = every["searchedFaces"]
    assert face["matchedFaces"] == ["Alice"] and face["identities"][0]["confident"] is True


def test_people_search_judges_each_person_as_the_face_search_judges_them():
    svc = archive({"alice": 84.0, **STRANGERS_AT_80})
    people.put_person(svc, "alice", "Alice")
    people.associate_faces(svc, "alice", [f["FaceId"] for f in svc.records.faces_of("alice.png")], 0.0)
    found = people.search_people(svc, photo_of("alice"), None, 10)
    assert found["threshold"] == naming.BASE_THRESHOLD
    (alice,) = found["people"]
    assert alice["personId"] == "alice" and alice["confident"] is True and alice["margin"] == 3.5
    svc.engine.scores["alice"] = 81.0
    (alice,) = people.search_people(svc, photo_of("alice"), None, 10)["people"]
    assert alice["confident"] is False


def test_a_million_faces_that_all_belong_to_one_identity_are_read_until_the_runner_up_shows():
    svc = archive({"alice": 84.0, "bob": 70.0}, extra=0)
    for i in range(40):
        indexing.upload_image(svc, f"alice{i}.png", photo_of("alice", shade=i + 1), {"name": "Alice"})
    found = searching.search_image(svc, photo_of("alice"), None, 5)
    assert found["matchedFaces"] == ["Alice"] * 5
    assert found["identities"][0]["runnerUp"] == 70.0 and found["identities"][0]["faces"] == 41


def test_get_info_describes_the_rule_for_the_archive_as_it_is():
    described = naming.describe(MILLION, DLIB_STRANGERS)
    assert described["defaultThreshold"] == described["lowestDefaultThreshold"] == 80.0
    assert described["marginNeeded"] == 1.37 and described["strangerModel"]["spread"] == 1.6
    assert math.isclose(described["maxExpectedStrangers"], 0.01)
