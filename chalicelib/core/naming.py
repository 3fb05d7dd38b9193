"""Naming: the threshold a search uses when the client names none, and how
much to trust each match, in an archive of any size.

The chance that some stranger's face scores a given similarity against a
query grows with the number of faces the archive holds: at a million faces
even a rare look-alike is there. So the default threshold is not a constant:
it is the lowest similarity (never under limits.DEFAULT_THRESHOLD, dlib's and
Rekognition's own default, 80) at which the archive is expected to hold at
most MAX_EXPECTED_STRANGERS strangers' faces that score as high:

    faces x P(one stranger's face scores >= threshold) <= MAX_EXPECTED_STRANGERS

P comes from the engine's StrangerModel (FaceEngine.stranger_model): the
similarity a stranger's face scores against a query, as a normal
distribution on the engine's own scale. The embedded engine's is measured
on dlib's descriptors (embedded/engine.py); Rekognition's is an assumption
from AWS's guidance (aws/rekognition.py), a stage setting
(FACEPRINT_STRANGER_SIMILARITY). `faces` is the collection's face count
(FaceEngine.face_count): all of its faces count as possible strangers,
which overstates them by the query's own person's few.

A client that names a threshold (`?threshold=80`) gets exactly that, every
match at or above it, as before. Either way each match says how much to
trust it: `expectedStrangers`, the number of strangers' faces this archive
is expected to hold that score at least its similarity, and `confident`,
whether that is at most MAX_EXPECTED_STRANGERS (what the default names).
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

from chalicelib.core import limits

# At most one search in a hundred names a stranger at the default threshold
# (as the stranger model counts them; README "Names at a million faces").
MAX_EXPECTED_STRANGERS = 0.01
_STANDARD = NormalDist()


@dataclass(frozen=True)
class StrangerModel:
    """How similar a stranger's face is to a query: normally distributed
    similarity (0-100, the engine's scale), `mean` and `sd`; `source` says
    where those come from (measured, assumed, set for the stage)."""

    mean: float
    sd: float
    source: str

    def chance_at_least(self, similarity: float) -> float:
        """The chance that one stranger's face scores `similarity` or more."""
        return 0.5 * math.erfc((similarity - self.mean) / (self.sd * math.sqrt(2.0)))

    def similarity_for_chance(self, chance: float) -> float:
        """The similarity that one stranger's face reaches with `chance`."""
        return self.mean + self.sd * -_STANDARD.inv_cdf(chance)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "source": self.source}


def parse_stranger_model(raw: str, source: str) -> StrangerModel:
    """`mean,sd` (FACEPRINT_STRANGER_SIMILARITY); ValueError when it is not
    two numbers, the mean from 0 to 100 and the sd above 0 and at most 50."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 2:
        raise ValueError("two numbers: mean,sd")
    mean, sd = float(parts[0]), float(parts[1])
    if not (0.0 <= mean <= 100.0 and 0.0 < sd <= 50.0):
        raise ValueError("a mean from 0 to 100 and an sd above 0 and at most 50")
    return StrangerModel(mean, sd, source)


def default_threshold(faces: int, model: StrangerModel) -> float:
    """The default threshold for an archive of `faces` faces: rounded up to
    a tenth, so that the threshold the reply reports is the one applied and
    keeps its promise."""
    if faces < 1:
        return limits.DEFAULT_THRESHOLD
    reached = model.similarity_for_chance(min(0.5, MAX_EXPECTED_STRANGERS / faces))
    return min(100.0, max(limits.DEFAULT_THRESHOLD, math.ceil(round(reached * 10, 6)) / 10))


def expected_strangers(similarity: float, faces: int, model: StrangerModel) -> float:
    """How many of `faces` strangers' faces are expected to score at least `similarity`."""
    return faces * model.chance_at_least(similarity)


@dataclass(frozen=True)
class Naming:
    """The threshold one search uses, and why; and how to judge its matches."""

    threshold: float
    asked: bool  # the client named the threshold
    faces: int
    model: StrangerModel

    def judge(self, similarity: float) -> dict:
        """The fields a match (or a person found) carries beside its similarity."""
        expected = expected_strangers(similarity, self.faces, self.model)
        return {"expectedStrangers": _significant(expected), "confident": expected <= MAX_EXPECTED_STRANGERS}

    def reply(self) -> dict:
        """The fields a search reply carries: the threshold and why."""
        if self.asked:
            reason = f"Asked for (threshold={self.threshold:g}): every match at or above it."
        else:
            at = expected_strangers(self.threshold, self.faces, self.model)
            reason = (
                f"The default for an archive of {self.faces:,} faces: about {_significant(at):g} strangers' faces "
                f"in it are expected to score {self.threshold:g} or more (the default keeps that at most "
                f"{MAX_EXPECTED_STRANGERS:g}, and is never under {limits.DEFAULT_THRESHOLD:g}). "
                "Send ?threshold= for every match down to a threshold of your own."
            )
        return {"threshold": self.threshold, "thresholdReason": reason}


def decide(faces: int, model: StrangerModel, asked: float | None) -> Naming:
    """The naming for a search in an archive of `faces` faces: the client's
    threshold when it named one, else the default for that size."""
    if asked is not None:
        return Naming(float(asked), True, faces, model)
    return Naming(default_threshold(faces, model), False, faces, model)


def describe(faces: int, model: StrangerModel) -> dict:
    """What GET /info says of the rule for the archive as it is."""
    return {
        "faces": faces,
        "defaultThreshold": default_threshold(faces, model),
        "lowestDefaultThreshold": limits.DEFAULT_THRESHOLD,
        "maxExpectedStrangers": MAX_EXPECTED_STRANGERS,
        "strangerModel": model.as_dict(),
    }


def _significant(value: float, digits: int = 2) -> float:
    """`value` to `digits` significant digits (tiny ones stay tiny, not 0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
