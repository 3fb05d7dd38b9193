"""Where the naming rule's spread comes from (core/naming.py,
embedded/engine.py STRANGER_SPREAD): the seeded strangers measured offline,
in this process, as `make bench-names` prints them first.

For each archive size, `ARCHIVES` draws of synthetic strangers
(chalicelib/embedded/synthetic.py, what `make seed` adds, made up as the
benchmark makes its archives: each size adds a draw of its own to the
last, as each `make seed` brings its own groups of people) are searched with
every face of the shared photos and every probe of it
(scripts/name_queries.py), directly on the descriptors (no server):

- how one query's strangers spread (the sd of its similarity to every
  stranger), and how far the best of them leads the second best (the
  runner-up), identity by identity;
- for a few spreads, what the rule would do: how often it names a stranger
  when the person is not in the archive (the strangers alone), and how often
  it names the right person among the strangers in the folds of
  bench_names.py, against how often it does in an empty archive.
"""

import math
import statistics
from collections import defaultdict
from dataclasses import replace

import numpy as np

from chalicelib.core import naming
from chalicelib.embedded.engine import STRANGERS
from chalicelib.embedded.synthetic import synthetic_descriptors

NEAREST = 64  # strangers' faces kept per query: enough for the runner-up identity
SPREADS = (0.7, 1.0, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.2)  # the rule's, and shorter and longer leads for comparison
BONUS, SECOND_FACE = 0.3, 2.0  # a bonus for a second face close to the best: what the rule would gain
ARCHIVES = 2
SPREAD_SAMPLE = 20_000


def similarity(distance: np.ndarray) -> np.ndarray:
    return 100.0 * (1.0 - distance / 3.0)


def nearest_strangers(queries: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query (rows), its NEAREST strangers' similarities and
    people (best first), and the sd of its similarity to a sample of them."""
    strangers, people = synthetic_descriptors(size, seed=seed)
    squared = np.einsum("ij,ij->i", strangers, strangers)
    k = min(NEAREST, size)
    scores = np.zeros((len(queries), k), np.float32)
    owners = np.zeros((len(queries), k), np.int64)
    for start in range(0, len(queries), 64):
        block = queries[start : start + 64]
        distances = squared[None, :] - 2.0 * block @ strangers.T + np.einsum("ij,ij->i", block, block)[:, None]
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        picked = np.take_along_axis(distances, nearest, axis=1)
        order = np.argsort(picked, axis=1)
        nearest, picked = np.take_along_axis(nearest, order, 1), np.take_along_axis(picked, order, 1)
        scores[start : start + 64] = similarity(np.sqrt(np.maximum(picked, 0.0)))
        owners[start : start + 64] = people[nearest]
    sample = strangers[: min(size, SPREAD_SAMPLE)]
    spread = np.array(
        [similarity(np.linalg.norm(sample - query, axis=1)).std() for query in queries[:: max(1, len(queries) // 200)]]
    )
    return scores, owners, spread


def stranger_identities(scores: np.ndarray, owners: np.ndarray, bonus: float = 0.0) -> list[naming.Identity]:
    """One query's nearest strangers as identities (a synthetic person's
    photos are one name, as their `name` metadata makes them)."""
    grouped: dict[str, list[float]] = {}
    for score, owner in zip(scores.tolist(), owners.tolist(), strict=True):
        grouped.setdefault(f"s{owner}", []).append(score)
    return identities_of(grouped, bonus)


def identities_of(grouped: dict[str, list[float]], bonus: float) -> list[naming.Identity]:
    """Identities from their faces' similarities (best first), best first;
    with a `bonus`, a second face within SECOND_FACE of the best adds
    `bonus` x how far it is inside that (the rule has none: docs/engine.md)."""

    def score(faces: list[float]) -> float:
        second = faces[1] if len(faces) > 1 else -math.inf
        return faces[0] + bonus * max(0.0, second - (faces[0] - SECOND_FACE))

    found = [naming.Identity(f"name:{who}", who, True, score(faces), len(faces)) for who, faces in grouped.items()]
    return sorted(found, key=lambda identity: -identity.similarity)


def named(identities: list[naming.Identity], faces: int, model: naming.StrangerModel, floor: float) -> list[str]:
    return [j.identity.label for j in naming.judge(identities, faces, model, floor) if j.confident]


def calibrate(searches: list[dict], descriptors: np.ndarray, sizes: list[int]) -> None:
    """`searches`: {"query": row of `descriptors`, "person", "indexed",
    "real": [(person, similarity)] of the fold's indexed faces}."""
    models = {f"spread {spread}": (replace(STRANGERS, spread=spread), 0.0) for spread in SPREADS}
    models[f"{STRANGERS.tail}, 2nd face +{BONUS}"] = (STRANGERS, BONUS)
    empty = [_right_named(search, [], search["person"], len(search["real"]), STRANGERS) for search in searches]
    print()
    print(
        f"The stranger tail, offline: {len(descriptors)} queries (every face and probe) against {ARCHIVES} draws "
        f"of seeded strangers per size; {len(searches)} searches in the folds, {sum(s['indexed'] for s in searches)} "
        "of indexed people."
    )
    stats = {
        size: {"leads": [], "best": [], "spreads": [], "false": defaultdict(int), "kept": defaultdict(int)}
        for size in sizes
        if size > 0
    }
    for draw in range(ARCHIVES):
        scores = owners = None
        seeded = 0
        for step, size in enumerate(sizes):
            if size < 1:
                continue
            # Each `make seed` of the benchmark is a draw of its own (its own groups of people).
            more, people, spread = nearest_strangers(descriptors, size - seeded, seed=1000 * (draw + 1) + step)
            scores, owners = _merged(scores, owners, more, people + step * 10**9)
            seeded = size
            _measure(stats[size], scores, owners, spread, size, searches, empty, models)
    print(f"{'strangers':>10}{'spread (sd)':>14}{'best p50 / max':>17}{'lead over 2nd: mean / p99 / max':>34}")
    for size, measured in stats.items():
        leads, best = measured["leads"], measured["best"]
        print(
            f"{size:>10,}{statistics.median(measured['spreads']):>14.2f}"
            f"{f'{statistics.median(best):.1f} / {max(best):.1f}':>17}"
            f"{f'{statistics.mean(leads):.2f} / {np.percentile(leads, 99):.2f} / {max(leads):.2f}':>34}"
        )
    print(
        "'stranger named': names a search with nobody of theirs in the archive (the strangers alone); "
        "'right kept': the right person named, of the searches the empty archive names them in."
    )
    named_empty = sum(1 for search, e in zip(searches, empty, strict=True) if search["indexed"] and e)
    print(f"{'strangers':>10}{'the rule with':>26}{'lead':>7}{'stranger named':>16}{'right kept':>12}")
    for size, measured in stats.items():
        for s, (model, _) in models.items():
            print(
                f"{size:>10,}{s:>26}{naming.margin_needed(size, model):>7.2f}"
                f"{measured['false'][s] / len(measured['leads']):>16.4f}"
                f"{measured['kept'][s] / (named_empty * ARCHIVES):>12.3f}",
                flush=True,
            )
    ours = f"spread {STRANGERS.tail}"
    worst = max((m["false"][ours] / len(m["leads"]) for m in stats.values()), default=0.0)
    print(
        f"(The rule's spread is {STRANGERS.tail}. At most 0.01 strangers named a search is the aim; a wider "
        f"spread asks a longer lead. The rule's spread names the seeded strangers in at most {worst:.2%} of these "
        "searches: room for real strangers, which spread wider around a real face than the seeded ones do (the "
        "table above: sd against sd).)"
    )


def _merged(scores, owners, more, people) -> tuple[np.ndarray, np.ndarray]:
    """The NEAREST best of two sets of nearest strangers, per query."""
    if scores is None:
        return more, people
    scores, owners = np.concatenate([scores, more], axis=1), np.concatenate([owners, people], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :NEAREST]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(owners, order, 1)


def _measure(measured: dict, scores, owners, spread, size: int, searches, empty, models) -> None:
    """One archive's figures, added to `measured`."""
    measured["spreads"] += spread.tolist()
    floors = scores[:, -1]
    for q in range(len(scores)):
        identities = stranger_identities(scores[q], owners[q])
        measured["best"].append(identities[0].similarity)
        measured["leads"].append(identities[0].similarity - identities[1].similarity)
    for s, (model, bonus) in models.items():
        alone = [stranger_identities(scores[q], owners[q], bonus) for q in range(len(scores))]
        for q, identities in enumerate(alone):
            measured["false"][s] += len(named(identities, size, model, float(floors[q])))
        for search, was_named in zip(searches, empty, strict=True):
            if search["indexed"] and was_named:
                q, faces = search["query"], size + len(search["real"])
                right = _right_named(search, alone[q], search["person"], faces, model, float(floors[q]), bonus)
                measured["kept"][s] += right


def _right_named(
    search: dict, strangers: list, person: str, faces: int, model, floor: float | None = None, bonus: float = 0.0
) -> bool:
    real: dict[str, list[float]] = {}
    for who, score in sorted(search["real"], key=lambda pair: -pair[1]):
        real.setdefault(who, []).append(score)
    identities = sorted(identities_of(real, bonus) + strangers, key=lambda identity: -identity.similarity)
    return person in named(identities, faces, model, floor)
