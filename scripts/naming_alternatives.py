"""Two ways a search could name more people among a million strangers,
measured offline on the seeded strangers (docs/engine.md, "What else was
tried"), against the rule's lead over the runner-up (core/naming.py):

- the spread read per query, from how far apart its strangers after the
  first lie (ranks 2 to 13), instead of one spread for every query;
- descriptors taken as the mean of the face and its mirror image (both the
  archive's and the query's), which smooths out some of a probe's noise.

For each, at the same share of searches naming a stranger when the person is
not in the archive, how many searches of an indexed person still name them
(of those the empty archive names). Every face and probe of the shared
photos (scripts/name_queries.py) against two draws of a million seeded
strangers, as `scripts/bench_names.py --offline` makes them.

    .venv/bin/python scripts/naming_alternatives.py     # about 3 minutes
"""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "scripts")]

import bench_names  # noqa: E402
import name_calibration  # noqa: E402

from chalicelib.embedded import descriptor_net  # noqa: E402

SIZE = 1_000_000
RANKS = 12  # the strangers' spacings a per-query spread is read from
SHARES = (0.0115, 0.02, 0.03)  # strangers named: the rule's own share at a million, and more


def main() -> int:
    for mirrored in (False, True):
        leads_alone, spreads_alone, leads_right, spreads_right = measure(mirrored)
        label = "mean of the face and its mirror image" if mirrored else "the descriptors as they are"
        print(f"{label}: {len(leads_alone)} searches of strangers alone, {len(leads_right)} of indexed people")
        print(f"{'strangers named':>16}{'one spread: lead':>18}{'kept':>7}{'per-query spread: kept':>24}")
        for share in SHARES:
            lead = float(np.quantile(leads_alone, 1 - share))
            kept = float(np.mean(leads_right >= lead))
            ratio = float(np.quantile(leads_alone / spreads_alone, 1 - share))
            kept_each = float(np.mean(leads_right >= ratio * spreads_right))
            print(f"{share:>16.2%}{lead:>18.2f}{kept:>7.1%}{kept_each:>24.1%}")
    return 0


def measure(mirrored: bool) -> tuple[np.ndarray, ...]:
    """Each search's lead over its runner-up and its per-query spread: of
    the strangers alone, and of the right person (a lead under 0 when a
    stranger outranks them, or they score under 80)."""
    compute = descriptor_net.DescriptorNet.compute
    if mirrored:

        def mean_of_both(self, chips: np.ndarray) -> np.ndarray:
            if not len(chips):
                return compute(self, chips)
            flipped = np.ascontiguousarray(chips[:, :, ::-1, :])
            return ((compute(self, chips) + compute(self, flipped)) / 2).astype(np.float32)

        descriptor_net.DescriptorNet.compute = mean_of_both
    try:
        faces = bench_names.analysed_faces(bench_names.KINDS, bench_names.DRAWS)
    finally:
        descriptor_net.DescriptorNet.compute = compute
    searches, descriptors = bench_names.offline_searches(faces)
    strangers = name_calibration.STRANGERS
    empty = [name_calibration._right_named(s, [], s["person"], len(s["real"]), strangers) for s in searches]
    alone, right = [], []
    for draw in range(2):
        scores, owners, _ = name_calibration.nearest_strangers(descriptors, SIZE, seed=1000 * (draw + 1) + 1)
        identities = [name_calibration.stranger_identities(scores[q], owners[q]) for q in range(len(scores))]
        ranked = [[identity.similarity for identity in found] for found in identities]
        alone += [(r[0] - r[1], spread(r[1:])) for r in ranked]
        for search, named in zip(searches, empty, strict=True):
            if not (search["indexed"] and named):
                continue
            best = max(score for who, score in search["real"] if who == search["person"])
            others = sorted([*ranked[search["query"]], *(s for who, s in search["real"] if who != search["person"])])
            rest = others[::-1]
            right.append((best - rest[0] if best >= 80 else -1.0, spread(rest)))
    a, r = np.array(alone), np.array(right)
    return a[:, 0], a[:, 1], r[:, 0], r[:, 1]


def spread(ranked: list[float]) -> float:
    """The scale of the strangers' tail near the top, read off the spacings
    of the best RANKS + 1 (the i-th spacing of an exponential tail is its
    scale over i)."""
    top = np.array(ranked[: RANKS + 1])
    return float(np.mean(np.arange(1, len(top)) * (top[:-1] - top[1:])))


if __name__ == "__main__":
    sys.exit(main())
