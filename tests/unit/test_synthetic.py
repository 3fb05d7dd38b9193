"""The synthetic descriptors behave like dlib's, as measured on the shared
photos (chalicelib/embedded/synthetic.py says how)."""

import numpy as np
import pytest

from chalicelib.embedded.synthetic import synthetic_batches, synthetic_descriptors


def in_batches(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """synthetic_batches' output, put together (as make seed writes it)."""
    batches = list(synthetic_batches(n, seed, batch=3_000))
    return np.concatenate([x for x, _ in batches]), np.concatenate([p for _, p in batches])


def pair_distances(n: int = 20_000, generate=synthetic_descriptors) -> tuple[np.ndarray, np.ndarray]:
    x, person = generate(n, seed=1)
    order = np.argsort(person, kind="stable")
    same = np.nonzero(person[order][1:] == person[order][:-1])[0]
    same_d = np.linalg.norm(x[order][same] - x[order][same + 1], axis=1)
    pairs = np.random.default_rng(2).integers(0, n, size=(50_000, 2))
    pairs = pairs[person[pairs[:, 0]] != person[pairs[:, 1]]]
    return same_d, np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1)


@pytest.mark.parametrize("generate", [synthetic_descriptors, in_batches], ids=["at once", "in batches"])
def test_photos_of_one_person_are_close_and_strangers_far_as_with_dlib(generate):
    same, different = pair_distances(generate=generate)
    assert 0.25 < np.median(same) < 0.4  # measured: 0.25-0.36 between distinct photos of one person
    assert np.percentile(same, 95) < 0.55
    assert 0.78 < different.mean() < 0.9  # measured: mean 0.83, 0.72 to 1.03
    assert 0.05 < different.std() < 0.1
    # dlib's 0.6 cut-off (threshold 80) separates them nearly always.
    assert (same > 0.6).mean() < 0.01
    assert (different <= 0.6).mean() < 0.01


def test_the_same_seed_gives_the_same_faces_and_another_seed_others():
    a, people = synthetic_descriptors(1000, seed=5)
    b, _ = synthetic_descriptors(1000, seed=5)
    c, _ = synthetic_descriptors(1000, seed=6)
    assert a.dtype == np.float32 and a.shape == (1000, 128) and people.shape == (1000,)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 1 < len(set(people.tolist())) < 1000  # several photos of some people


def test_batches_run_on_one_numbering_of_people_and_repeat_with_their_seed():
    a, people = in_batches(10_000, seed=5)
    b, _ = in_batches(10_000, seed=5)
    assert a.dtype == np.float32 and a.shape == (10_000, 128) and np.array_equal(a, b)
    first, second = (set(p.tolist()) for _, p in list(synthetic_batches(6_000, seed=5, batch=3_000)))
    assert not first & second  # a person's photos are all in one batch
    assert 1 < len(set(people.tolist())) < 10_000
