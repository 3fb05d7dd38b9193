"""Naming: whose face this is, in an archive of any size, and how sure.

A search's matches are grouped into identities: a person (their personId),
else the `name` metadata of the matched photo (one identity per name), else
the face alone (a face without a name may be anyone: it names a photo, not
a person). An identity scores its best face: several faces of one identity
are not counted as more evidence, because a stranger's several photos come
close to a query together as often as a person's do (docs/engine.md "Names at a
million faces" measures it).

Is the top identity the face's person, or only the stranger who happens to
come closest among the archive's N faces? If the person is not in the
archive, the top and the runner-up are the best and second best of N
strangers, and in the thin tail where those lie the best rarely stands far
above the second: its lead is about `spread / z` (z the normal quantile of
1/N), a fraction of a point at a million faces, whatever the level
strangers reach for this query. So an identity stands above the strangers
when the archive is expected to hold at most MAX_EXPECTED_STRANGERS
strangers' faces as close to the query, reading the strangers' level off
the identity just below it, taken as the best of N strangers:

    N x P(Z >= z(1/N) + (similarity - runner_up) / spread) <= 0.01

or, as the previous rule said, reading it off the StrangerModel's mean for
every query (`expected_strangers`, which small archives need: a runner-up
of 70 among 10 faces says little). The lead this takes (`margin_needed`)
falls slowly with N: 1.7 points at 10,000 faces, 1.4 at a million
(dlib's scale). The identity must also score at least BASE_THRESHOLD (80).

Every identity ranked above one that stands above the strangers does too.
Among those, every face without a name is named (its photo's label, as
searches always named every match at 80), and the best known identity
(person or name) is named when it stands clear of every other known
identity above the strangers by the same margin (a look-alike as close
leaves both unnamed) and no face without a name stands clear above it.
Everything else is judged `confident: false`, and a default search still
shows the top identity: a likely name flagged, never an empty answer.

The StrangerModel (FaceEngine.stranger_model) is the engine's: mean and sd
of a stranger's similarity over every query (the absolute evidence) and the
spread of one query's strangers (the margin). The embedded engine's are
measured on dlib's descriptors (embedded/engine.py); Rekognition's are an
assumption (aws/rekognition.py), a stage setting
(FACEPRINT_STRANGER_SIMILARITY=mean,sd[,spread]). N is the collection's
face count (FaceEngine.face_count).

A client that names a threshold (`?threshold=80`) gets exactly that, every
match at or above it, each judged by the same rule.
"""

import math
from dataclasses import dataclass
from statistics import NormalDist

from chalicelib.core import limits

# At most one search in a hundred names a stranger: the strangers the
# archive is expected to hold as close as a named identity.
MAX_EXPECTED_STRANGERS = 0.01
BASE_THRESHOLD = limits.DEFAULT_THRESHOLD
_STANDARD = NormalDist()


@dataclass(frozen=True)
class StrangerModel:
    """How similar a stranger's face is to a query (0-100, the engine's
    scale): over every query normally distributed with `mean` and `sd`;
    for one query, spread by `spread` (None: `sd`) around that query's own
    level. `source` says where those come from (measured, assumed, set for
    the stage)."""

    mean: float
    sd: float
    source: str
    spread: float | None = None

    @property
    def tail(self) -> float:
        """The spread of one query's strangers, which sets the margin."""
        return self.spread if self.spread is not None else self.sd

    def chance_at_least(self, similarity: float) -> float:
        """The chance that one stranger's face scores `similarity` or more."""
        return _above((similarity - self.mean) / self.sd)

    def as_dict(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "spread": self.tail, "source": self.source}


def parse_stranger_model(raw: str, source: str) -> StrangerModel:
    """`mean,sd` or `mean,sd,spread` (FACEPRINT_STRANGER_SIMILARITY);
    ValueError when they are not numbers, the mean from 0 to 100 and the
    sd and spread above 0 and at most 50."""
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) not in (2, 3):
        raise ValueError("two or three numbers: mean,sd or mean,sd,spread")
    mean, sd, *spread = (float(part) for part in parts)
    if not (0.0 <= mean <= 100.0 and all(0.0 < value <= 50.0 for value in (sd, *spread))):
        raise ValueError("a mean from 0 to 100, and an sd (and spread) above 0 and at most 50")
    return StrangerModel(mean, sd, source, spread[0] if spread else None)


def expected_strangers(similarity: float, faces: int, model: StrangerModel) -> float:
    """How many of `faces` strangers' faces are expected to score at least
    `similarity`, by the model's level over every query."""
    return faces * model.chance_at_least(similarity)


def strangers_above_runner_up(similarity: float, runner_up: float, faces: int, model: StrangerModel) -> float:
    """How many of `faces` strangers' faces are expected to score at least
    `similarity` when the best of them scores `runner_up`."""
    n = max(faces, 2)
    return n * _above(_z(1.0 / n) + (similarity - runner_up) / model.tail)


def margin_needed(faces: int, model: StrangerModel) -> float:
    """The lead over a stranger runner-up that stands above the strangers."""
    n = max(faces, 2)
    return model.tail * (_z(MAX_EXPECTED_STRANGERS / n) - _z(1.0 / n))


@dataclass(frozen=True)
class Identity:
    """Who some matches of one search are: `key` groups them
    ("person:<id>", "name:<name>", "face:<FaceId>"), `label` shows them,
    `known` says whether it is a person or a name; `similarity` is its
    best face's, `faces` how many of its faces the search saw."""

    key: str
    label: str
    known: bool
    similarity: float
    faces: int
    person_id: str | None = None


@dataclass(frozen=True)
class Judgement:
    """What the rule decided of one identity, and its figures."""

    identity: Identity
    runner_up: float | None  # the next identity's similarity (or the lowest seen); None: nobody else
    expected_strangers: float  # as close as this identity, in this archive (the lower of the two readings)
    above_strangers: bool
    confident: bool  # named
    reason: str

    def as_dict(self) -> dict:
        identity = self.identity
        margin = None if self.runner_up is None else round(identity.similarity - self.runner_up, 3)
        return {
            "label": identity.label,
            **({"personId": identity.person_id} if identity.person_id else {}),
            "similarity": identity.similarity,
            "faces": identity.faces,
            "runnerUp": self.runner_up,
            "margin": margin,
            "expectedStrangers": significant(self.expected_strangers),
            "confident": self.confident,
            "reason": self.reason,
        }


def judge(identities: list[Identity], faces: int, model: StrangerModel, floor: float | None) -> list[Judgement]:
    """Judge a search's identities, best first. `floor` is the lowest
    similarity the engine returned when it was asked for fewer faces than
    it holds (whoever it left out scores at most that), None when it
    returned every face it had."""
    scores = [identity.similarity for identity in identities]
    runner_ups = [scores[i + 1] if i + 1 < len(scores) else floor for i in range(len(scores))]
    evidence = [_evidence(score, runner_up, faces, model) for score, runner_up in zip(scores, runner_ups, strict=True)]
    standing = [i for i, e in enumerate(evidence) if scores[i] >= BASE_THRESHOLD and e <= MAX_EXPECTED_STRANGERS]
    above = standing[-1] + 1 if standing else 0  # identities [0, above) stand above the strangers
    named = {i for i in range(above) if not identities[i].known}
    reasons = {}
    known = [i for i in range(above) if identities[i].known]
    if known:
        best = known[0]
        rival = next((i for i in known[1:] if not _clear(scores[best], scores[i], faces, model)), None)
        over = next((i for i in range(best) if _clear(scores[i], scores[best], faces, model)), None)
        if rival is not None:
            rival_label = identities[rival].label
            reasons[best] = f"{rival_label} is as close ({scores[rival]:.1f}): a look-alike, or the same face"
        elif over is not None:
            reasons[best] = f"a face without a name ({identities[over].label}) is clearly closer"
        else:
            named.add(best)
        for i in known[1:]:
            reasons[i] = f"{identities[best].label} is closer"
    judgements = []
    for i, identity in enumerate(identities):
        if i in named:
            why = _named(identity, runner_ups[i])
        else:
            why = reasons.get(i) or _unnamed(identity, runner_ups[i], evidence[i], faces, model)
        judgements.append(Judgement(identity, runner_ups[i], evidence[i], i < above, i in named, why))
    return judgements


def _evidence(similarity: float, runner_up: float | None, faces: int, model: StrangerModel) -> float:
    expected = expected_strangers(similarity, faces, model)
    if runner_up is None:
        return expected
    return min(expected, strangers_above_runner_up(similarity, runner_up, faces, model))


def _clear(higher: float, lower: float, faces: int, model: StrangerModel) -> bool:
    return strangers_above_runner_up(higher, lower, faces, model) <= MAX_EXPECTED_STRANGERS


def _named(identity: Identity, runner_up: float | None) -> str:
    if runner_up is None:
        return f"named: {identity.similarity:.1f}, nobody else in the archive"
    return f"named: {identity.similarity:.1f}, {identity.similarity - runner_up:.1f} above the next ({runner_up:.1f})"


def _unnamed(identity: Identity, runner_up: float | None, expected: float, faces: int, model: StrangerModel) -> str:
    if identity.similarity < BASE_THRESHOLD:
        return f"under {BASE_THRESHOLD:g}"
    if runner_up is None:
        return f"about {significant(expected):g} strangers' faces expected as close"
    return (
        f"{identity.similarity - runner_up:.1f} above the next ({runner_up:.1f}); among {faces:,} faces a name "
        f"needs {margin_needed(faces, model):.1f} (about {significant(expected):g} strangers expected as close)"
    )


def describe(faces: int, model: StrangerModel) -> dict:
    """What GET /info says of the rule for the archive as it is."""
    return {
        "faces": faces,
        "defaultThreshold": BASE_THRESHOLD,
        "lowestDefaultThreshold": BASE_THRESHOLD,
        "maxExpectedStrangers": MAX_EXPECTED_STRANGERS,
        "marginNeeded": round(margin_needed(faces, model), 2),
        "strangerModel": model.as_dict(),
    }


def reason(asked: float | None, faces: int, model: StrangerModel) -> str:
    """The reply's thresholdReason: the threshold, and the rule."""
    rule = (
        f"the best identity is named when it scores {BASE_THRESHOLD:g} or more and leads the next by "
        f"{margin_needed(faces, model):.1f} among these {faces:,} faces (at most {MAX_EXPECTED_STRANGERS:g} "
        'strangers expected as close: docs/engine.md "Names at a million faces")'
    )
    if asked is not None:
        return f"Asked for (threshold={asked:g}): every match at or above it, each judged; {rule}."
    return (
        f"The default: the matches from {BASE_THRESHOLD:g} of the identities that stand above the strangers, "
        f"or else of the likeliest one, flagged; {rule}. Send ?threshold= for every match down to it."
    )


def _above(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _z(chance: float) -> float:
    """The standard normal quantile leaving `chance` above it."""
    return -_STANDARD.inv_cdf(min(max(chance, 1e-300), 1.0 - 1e-16))


def significant(value: float, digits: int = 2) -> float:
    """`value` to `digits` significant digits (tiny ones stay tiny, not 0)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
