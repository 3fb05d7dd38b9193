"""Synthetic face descriptors distributed like dlib's ResNet descriptors, for
benchmarks and seeding a large collection: identities are clusters, with
dlib's spread between photos of one person and between different people.

Model: a person's centre is MEAN + SPREAD_BETWEEN * (group part + own part),
the group part (one of GROUPS) standing for what some people share (sex, age,
ethnicity: measured different-person distances vary, from 0.72 to 1.03); a
photo is its person's centre plus WITHIN per dimension, scaled by a per-photo
quality factor (some photos of a person are further off than others).

Calibration (scripts/calibrate_synthetic.py recomputes it): the project's
FaceAnalyzer on the 14 shared photos (/work/shared/faces) found 20 faces; group
photos reuse faces pasted from the single-person photos (copies within 0.13 of
each other), which leaves 11 distinct face photos of 8 people, one of them
(lawrence) in 4 distinct photos. Measured:
- same person (6 pairs): distance mean 0.297, 0.254 to 0.362; within-person
  residual 0.0187 per dimension (WITHIN);
- different people (49 pairs): mean 0.834, std 0.080, 0.716 to 1.027;
- MEAN and SPREAD: per-dimension mean and std of the 8 people's descriptors.
With GROUP_SHARE = 0.35 and PHOTO_SPREAD = 0.3 (chosen, not measured: one
person's photos cannot tell them), 20,000 generated faces give same-person
distances of median 0.31 (5-95%: 0.21-0.45) and different-person ones of mean
0.83, std 0.074, 0.2% at or under dlib's 0.6 cut-off (tests/unit/test_synthetic.py).
A larger group share reaches the measured std 0.080 but puts 1% of strangers
under 0.6, more than dlib's 99.38% on LFW allows.
"""

from collections.abc import Iterator

import numpy as np

DIMENSIONS = 128
WITHIN = 0.0187
GROUPS = 16
GROUP_SHARE = 0.35
PHOTO_SPREAD = 0.3
MEAN_PHOTOS_PER_PERSON = 4.0

# fmt: off
MEAN = np.array([
    -0.082, 0.125, 0.050, -0.041, -0.100, 0.000, -0.050, -0.075, 0.166, -0.057, 0.189, -0.007, -0.221, -0.024,
    0.015, 0.126, -0.134, -0.119, -0.117, -0.077, 0.038, 0.034, 0.007, 0.044, -0.160, -0.314, -0.071, -0.110,
    0.036, -0.112, -0.037, 0.021, -0.172, -0.061, 0.035, 0.045, -0.050, -0.078, 0.187, 0.033, -0.188, 0.033,
    0.045, 0.248, 0.224, 0.036, 0.034, -0.072, 0.107, -0.249, 0.086, 0.158, 0.085, 0.091, 0.101, -0.176,
    0.010, 0.126, -0.194, 0.045, 0.071, -0.060, -0.048, -0.053, 0.195, 0.135, -0.102, -0.137, 0.147, -0.129,
    -0.048, 0.067, -0.122, -0.173, -0.251, 0.049, 0.367, 0.160, -0.200, 0.009, -0.089, -0.012, 0.049, 0.043,
    -0.048, -0.052, -0.060, 0.037, 0.186, -0.006, -0.006, 0.219, 0.011, -0.027, 0.017, 0.059, -0.129, -0.020,
    -0.108, -0.042, 0.040, -0.057, -0.002, 0.115, -0.221, 0.168, -0.003, -0.027, -0.022, -0.018, -0.065, 0.008,
    0.156, -0.262, 0.217, 0.172, 0.007, 0.129, 0.040, 0.047, 0.003, -0.033, -0.172, -0.087, 0.038, -0.022,
    0.022, 0.037,
], dtype=np.float32)
SPREAD = np.array([
    0.051, 0.046, 0.045, 0.044, 0.056, 0.061, 0.049, 0.053, 0.075, 0.057, 0.063, 0.063, 0.053, 0.060, 0.030, 0.033,
    0.045, 0.055, 0.047, 0.034, 0.056, 0.036, 0.071, 0.040, 0.040, 0.054, 0.049, 0.062, 0.072, 0.061, 0.046, 0.057,
    0.037, 0.064, 0.034, 0.042, 0.062, 0.068, 0.034, 0.061, 0.048, 0.061, 0.049, 0.061, 0.048, 0.056, 0.029, 0.028,
    0.052, 0.069, 0.028, 0.021, 0.055, 0.041, 0.033, 0.076, 0.041, 0.037, 0.050, 0.057, 0.045, 0.084, 0.038, 0.053,
    0.051, 0.049, 0.032, 0.056, 0.074, 0.077, 0.046, 0.068, 0.050, 0.047, 0.031, 0.063, 0.050, 0.036, 0.064, 0.033,
    0.078, 0.048, 0.054, 0.074, 0.030, 0.048, 0.049, 0.034, 0.062, 0.045, 0.025, 0.072, 0.049, 0.060, 0.040, 0.033,
    0.045, 0.054, 0.043, 0.031, 0.040, 0.026, 0.057, 0.030, 0.044, 0.046, 0.062, 0.054, 0.051, 0.081, 0.056, 0.062,
    0.039, 0.050, 0.052, 0.064, 0.048, 0.048, 0.043, 0.029, 0.045, 0.097, 0.044, 0.061, 0.047, 0.061, 0.037, 0.036,
], dtype=np.float32)
# fmt: on

# SPREAD was measured mostly on one photo per person: take the photo's own
# deviation out to get the spread of people's centres.
SPREAD_BETWEEN = np.sqrt(np.maximum(SPREAD**2 - WITHIN**2, 1e-4)).astype(np.float32)


def synthetic_descriptors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` descriptors (float32, [n, 128]) and each one's person (int64, [n]):
    people have 1 to a few dozen photos (geometric, MEAN_PHOTOS_PER_PERSON on
    average), in random order. The same (n, seed) gives the same output."""
    rng = np.random.default_rng(seed)
    sizes = rng.geometric(1 / MEAN_PHOTOS_PER_PERSON, size=int(n / MEAN_PHOTOS_PER_PERSON * 1.5) + 16)
    person = np.repeat(np.arange(len(sizes)), sizes)[:n]
    people = int(person[-1]) + 1 if n else 0
    group = rng.integers(0, GROUPS, size=people)
    group_parts = rng.standard_normal((GROUPS, DIMENSIONS), dtype=np.float32) * np.float32(np.sqrt(GROUP_SHARE))
    centres = rng.standard_normal((people, DIMENSIONS), dtype=np.float32)
    centres *= np.float32(np.sqrt(1 - GROUP_SHARE))
    centres += group_parts[group]
    centres *= SPREAD_BETWEEN
    centres += MEAN
    quality = np.exp(rng.normal(0.0, PHOTO_SPREAD, size=n)).astype(np.float32) * np.float32(WITHIN)
    descriptors = rng.standard_normal((n, DIMENSIONS), dtype=np.float32)
    descriptors *= quality[:, None]
    descriptors += centres[person]
    order = rng.permutation(n)
    return descriptors[order], person[order]


def synthetic_batches(n: int, seed: int, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`n` descriptors distributed as synthetic_descriptors' are, `batch` at a
    time (a million without holding them all), with each one's person: the
    same groups throughout, person numbers running on from batch to batch,
    each person's photos within one batch, in random order there."""
    rng = np.random.default_rng(seed)
    group_parts = rng.standard_normal((GROUPS, DIMENSIONS), dtype=np.float32) * np.float32(np.sqrt(GROUP_SHARE))
    first_person = 0
    for start in range(0, n, batch):
        size = min(batch, n - start)
        sizes = rng.geometric(1 / MEAN_PHOTOS_PER_PERSON, size=int(size / MEAN_PHOTOS_PER_PERSON * 1.5) + 16)
        person = np.repeat(np.arange(len(sizes)), sizes)[:size]
        people = int(person[-1]) + 1
        centres = rng.standard_normal((people, DIMENSIONS), dtype=np.float32)
        centres *= np.float32(np.sqrt(1 - GROUP_SHARE))
        centres += group_parts[rng.integers(0, GROUPS, size=people)]
        centres *= SPREAD_BETWEEN
        centres += MEAN
        quality = np.exp(rng.normal(0.0, PHOTO_SPREAD, size=size)).astype(np.float32) * np.float32(WITHIN)
        descriptors = rng.standard_normal((size, DIMENSIONS), dtype=np.float32)
        descriptors *= quality[:, None]
        descriptors += centres[person]
        order = rng.permutation(size)
        yield descriptors[order], person[order] + first_person
        first_person += people
