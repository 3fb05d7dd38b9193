"""`make bench-names`: whose face is this, in archives of 0, 10,000, 100,000
and 1,000,000 seeded strangers, with today's rule and with the default
threshold that rises with the archive's size (core/naming.py), in one run:
the table of README "Names at a million faces".

    make bench-names                 # about 15 minutes on 2 cores; run it with nice
    .venv/bin/python scripts/bench_names.py --sizes 0,2000 --variants "grey 150 px"   # what the test runs

First, in this process: every face of the shared photos, who it is, and
harder photos of it (scripts/name_queries.py: a crop, a grey 150 px one, a
small JPEG at quality 30, a turned one); then whether the seeded strangers
(chalicelib/embedded/synthetic.py) are as far from each other and from the
real faces as real strangers are, in the tail too, beside the stranger
model of the rule.

Then `make run` on a fresh data folder, and for each size (seeded while it
runs, `make seed`), two folds: each indexes some of the shared photos over
HTTP and names their faces as people (PUT /people, POST /people/{id}/faces),
then searches with the photos left out, every face of each (?faces=all),
and each of their faces' variants; then deletes them. Fold A indexes the
group photos and two of Lawrence's, fold B the portraits and Lawrence's
other two; Jim Carrey and the smiling lady, who have one photo each, are
never indexed and are searched in fold A. Each query is searched three
times: `?threshold=80` (today's default, which an explicit threshold keeps),
the default (the rule), and `?threshold=0&max=20` (for the best stranger).

A name is right when it is the query's person; every other name (a seeded
stranger, another real person) is false. The script fails if, at the largest
size, the rule names a stranger or names the right person less often than at
the smallest. Nothing is left running.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench import finish, make_run  # noqa: E402
from name_queries import VARIANTS, SharedFace, shared_faces  # noqa: E402

from chalicelib.core import naming  # noqa: E402
from chalicelib.embedded.engine import STRANGER_DISTANCE_MEAN, STRANGER_DISTANCE_SD, STRANGERS  # noqa: E402
from chalicelib.embedded.synthetic import synthetic_descriptors  # noqa: E402
from tests.support.photos import people, photo  # noqa: E402

JPEG = {"Content-Type": "image/jpeg"}
JSON = {"Content-Type": "application/json"}
FOLDS = {
    "A": [
        "Keanu-Avril-Lawrence.jpg",
        "Keanu-Avril-Mike.jpg",
        "Justin-Trudeau-Barack-Obama-Lawrence.jpg",
        "Lawrence3.jpg",
        "Lawrence4.jpg",
    ],
    "B": [
        "Avril-Lavigne.jpg",
        "Keanu-Reeves.jpg",
        "Mike-Meyers.jpg",
        "Justin-Trudeau-Barack-Obama.jpg",
        "Lawrence2.jpg",
        "Lawrence19.jpg",
    ],
}
NEVER_INDEXED = ["Jim-Carrey.jpg", "smiling-lady.jpg"]  # searched in fold A
COPY_DISTANCE = 0.2  # group photos paste the portraits' faces (scripts/calibrate_synthetic.py)
SYNTHETIC_SAMPLE = 100_000


@dataclass
class Query:
    """One searched face: whose, from which photo, as which variant."""

    person: str
    photo: str
    variant: str  # "photo" for the whole photo, searched with ?faces=all
    indexed: bool  # whether the person has faces in the fold's archive


@dataclass
class Outcome:
    """The names one rule gave one query."""

    names: set[str]
    right: str

    @property
    def false(self) -> set[str]:
        return self.names - {self.right}


@dataclass
class SizeResult:
    strangers: int
    faces: list[int] = field(default_factory=list)  # in the archive, per fold
    thresholds: list[float] = field(default_factory=list)
    queries: list[Query] = field(default_factory=list)
    before: list[Outcome] = field(default_factory=list)
    after: list[Outcome] = field(default_factory=list)
    best_stranger: list[float] = field(default_factory=list)
    best_right: list[float] = field(default_factory=list)  # of the queries of indexed people
    seconds: float = 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="0,10000,100000,1000000", help="seeded strangers, ascending")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of: {', '.join(VARIANTS)}")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if sizes != sorted(set(sizes)) or sizes[0] < 0 or any(v not in VARIANTS for v in variants):
        parser.error("--sizes: ascending whole numbers; --variants: some of " + ", ".join(VARIANTS))

    started = time.perf_counter()
    faces = analysed_faces()
    print(f"{len(faces)} faces in {len({f.photo for f in faces})} shared photos, {os.cpu_count()} cpus", flush=True)
    for face in faces:
        for dropped in face.dropped:
            print(f"  left out: {face.photo} ({face.person}) {dropped}")
    check_strangers(faces)

    results: list[SizeResult] = []
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-names-") as tmp:
        data = Path(tmp) / "data"
        env = {name: value for name, value in os.environ.items() if name != "STAGE"} | {"FACEPRINT_DATA_DIR": str(data)}
        with make_run(data) as server:
            seeded = 0
            for size in sizes:
                if size > seeded:
                    seconds = seed(size - seeded, env)
                    print(f"make seed FACES={size - seeded:,}: {seconds:.0f} s", flush=True)
                    seeded = size
                result = measure(server, faces, variants, size)
                results.append(result)
                print(
                    f"{size:,} strangers: {len(result.queries)} searches in {result.seconds:.0f} s, "
                    f"default threshold {span(result.thresholds, '{:g}')}",
                    flush=True,
                )
    report(results, variants)
    failures = verdict(results)
    print(f"bench-names took {time.perf_counter() - started:.0f} s")
    return finish(failures)


def analysed_faces() -> list[SharedFace]:
    from chalicelib.embedded.workers import FaceAnalyzer

    analyzer = FaceAnalyzer()
    try:
        return shared_faces(analyzer, people(), photo)
    finally:
        analyzer.close()


# --- are the seeded strangers like real ones? ---------------------------------------------


def check_strangers(faces: list[SharedFace]) -> None:
    """Distances between different people: the shared photos' (distinct
    photos: pasted copies counted once), the seeded strangers' to each
    other and to the real faces, and the rule's model, side by side."""
    distinct: list[SharedFace] = []
    for face in faces:
        if all(np.linalg.norm(face.descriptor - other.descriptor) >= COPY_DISTANCE for other in distinct):
            distinct.append(face)
    real = np.array(
        [
            np.linalg.norm(a.descriptor - b.descriptor)
            for i, a in enumerate(distinct)
            for b in distinct[i + 1 :]
            if a.person != b.person
        ]
    )
    seeded, person = synthetic_descriptors(SYNTHETIC_SAMPLE, seed=15)
    rng = np.random.default_rng(15)
    pairs = rng.integers(0, SYNTHETIC_SAMPLE, size=(400_000, 2))
    pairs = pairs[person[pairs[:, 0]] != person[pairs[:, 1]]]
    among = np.linalg.norm(seeded[pairs[:, 0]] - seeded[pairs[:, 1]], axis=1)
    to_real = np.concatenate([np.linalg.norm(seeded - face.descriptor, axis=1) for face in distinct])
    model = rng.normal(STRANGER_DISTANCE_MEAN, STRANGER_DISTANCE_SD, 1_000_000)
    people_count = len({face.person for face in distinct})
    print()
    print(
        f"Distances between different people (dlib; 0.6 is similarity 80): {len(distinct)} distinct face photos "
        f"of {people_count} people give {len(real)} real pairs"
    )
    columns = ["pairs", "mean", "sd", "min", "0.1%", "1%", "2%", "5%", "25%", "50%", "<= 0.724", "<= 0.6"]
    print(f"{'':38}" + "".join(f"{c:>9}" for c in columns))
    lowest_real = real.min()
    for label, values in [
        ("real strangers (shared photos)", real),
        ("seeded strangers, to each other", among),
        ("seeded strangers, to the real faces", to_real),
        (f"the rule's model N({STRANGER_DISTANCE_MEAN}, {STRANGER_DISTANCE_SD})", model),
    ]:
        cells = [f"{len(values):,}" if label[:3] != "the" else "-", f"{values.mean():.3f}", f"{values.std():.3f}"]
        cells.append(f"{values.min():.3f}" if label[:3] != "the" else "-")
        cells += [f"{np.percentile(values, q):.3f}" for q in (0.1, 1, 2, 5, 25, 50)]
        cells += [f"{(values <= lowest_real).mean():.2%}", f"{(values <= 0.6).mean():.3%}"]
        print(f"{label:38}" + "".join(f"{c:>9}" for c in cells))
    print(
        f"({len(real)} real pairs show the tail down to about their 2% quantile only: below it, "
        "the seeded strangers and the model are extrapolations. '<= 0.724': the nearest real pair.)"
    )
    per_face = [np.linalg.norm(seeded - face.descriptor, axis=1) for face in distinct]
    real_means = [
        np.mean([np.linalg.norm(face.descriptor - o.descriptor) for o in distinct if o.person != face.person])
        for face in distinct
    ]
    print(
        "per real face, mean distance to real strangers vs to seeded ones: "
        + ", ".join(
            f"{face.person} {mean:.2f}/{d.mean():.2f}"
            for face, mean, d in zip(distinct, real_means, per_face, strict=True)
        )
    )


# --- the benchmark over HTTP ----------------------------------------------------------------


def seed(count: int, env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        ["nice", "make", "--no-print-directory", "seed", f"FACES={count}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"make seed failed:\n{done.stdout[-2000:]}")
    return time.perf_counter() - started


def measure(server, faces: list[SharedFace], variants: list[str], strangers: int) -> SizeResult:
    started = time.perf_counter()
    result = SizeResult(strangers)
    for fold, indexed in FOLDS.items():
        keys = index_fold(server, faces, fold, indexed, strangers)
        result.faces.append(server.request("GET", "/info")[1]["faces"])
        known = {f.person for f in faces if f.photo in indexed}
        held_out = [name for name in sorted(people()) if name not in indexed and people()[name]]
        if fold != "A":
            held_out = [name for name in held_out if name not in NEVER_INDEXED]
        for name in held_out:
            search_photo(server, faces, name, known, result)
            for face in [f for f in faces if f.photo == name]:
                for variant in variants:
                    if variant in face.variants:
                        search_variant(server, face, variant, known, result)
        forget_fold(server, keys)
    result.seconds = time.perf_counter() - started
    return result


def display(person: str) -> str:
    return person.replace("_", " ").capitalize()


def index_fold(server, faces: list[SharedFace], fold: str, indexed: list[str], strangers: int) -> list[str]:
    """PUT the fold's photos, then name each face as its person."""
    keys, owners = [], {}
    for name in indexed:
        key = f"names/{strangers}/{fold}/{name}"
        status, body, _ = server.request("PUT", f"/index/{quote(key, safe='')}", photo(name), JPEG)
        assert status == 201 and body["image"]["status"] == "indexed", body
        keys.append(key)
        for stored in body["faces"]:
            owners.setdefault(nearest(faces, name, stored["BoundingBox"]).person, []).append(stored["FaceId"])
    for person, face_ids in owners.items():
        status, body, _ = server.request(
            "PUT", f"/people/{person}", json.dumps({"name": display(person)}).encode(), JSON
        )
        assert status in (200, 201), body
        status, body, _ = server.request(
            "POST", f"/people/{person}/faces", json.dumps({"faceIds": face_ids}).encode(), JSON
        )
        assert status == 200 and not body["unsuccessfulFaceAssociations"], body
    return keys


def forget_fold(server, keys: list[str]) -> None:
    for key in keys:
        status, body, _ = server.request("DELETE", f"/images/{quote(key, safe='')}")
        assert status == 200, body
    listed = server.request("GET", "/people?limit=1000")[1]["people"]
    for person in listed:
        status, body, _ = server.request("DELETE", f"/people/{person['personId']}")
        assert status == 200, body


def nearest(faces: list[SharedFace], name: str, box: dict) -> SharedFace:
    """The shared face of photo `name` whose box is nearest `box`."""

    def off(face: SharedFace) -> float:
        return sum(abs(face.box[side] - box[side]) for side in ("Left", "Top", "Width", "Height"))

    return min((f for f in faces if f.photo == name), key=off)


def search_photo(server, faces: list[SharedFace], name: str, known: set[str], result: SizeResult) -> None:
    """Every face of the photo, three times (?faces=all)."""
    replies = [search(server, photo(name), f"?faces=all&{rule}") for rule in ("threshold=80", "", "threshold=0&max=20")]
    before, after, probe = (reply["searchedFaces"] for reply in replies)
    result.thresholds.append(replies[1]["threshold"])
    for i, searched in enumerate(after):
        person = nearest(faces, name, searched["BoundingBox"]).person
        record(result, Query(person, name, "photo", person in known), before[i], searched, probe[i])


def search_variant(server, face: SharedFace, variant: str, known: set[str], result: SizeResult) -> None:
    before, after, probe = (
        search(server, face.variants[variant], f"?{rule}") for rule in ("threshold=80", "", "threshold=0&max=20")
    )
    result.thresholds.append(after["threshold"])
    record(result, Query(face.person, face.photo, variant, face.person in known), before, after, probe)


def search(server, data: bytes, query: str) -> dict:
    status, body, _ = server.request("POST", f"/search{query.rstrip('&?')}", data, JPEG)
    assert status == 200, body
    return body


def record(result: SizeResult, query: Query, before: dict, after: dict, probe: dict) -> None:
    right = display(query.person)
    result.queries.append(query)
    result.before.append(Outcome(set(before["matchedFaces"]), right))
    result.after.append(Outcome(set(after["matchedFaces"]), right))
    others = [match["Similarity"] for match in probe["matches"] if match["label"] != right]
    result.best_stranger.append(max(others) if others else 0.0)
    if query.indexed:
        result.best_right.append(max((m["Similarity"] for m in probe["matches"] if m["label"] == right), default=0.0))


# --- the table ----------------------------------------------------------------------------------


def report(results: list[SizeResult], variants: list[str]) -> None:
    first = results[0]
    known = sum(q.indexed for q in first.queries)
    print()
    print(
        f"{len(first.queries)} searched faces per archive: every face of the photos left out of each fold, "
        f"and its variants ({', '.join(variants)}); {known} of indexed people, "
        f"{len(first.queries) - known} of people never indexed"
    )
    print(
        "before: today's rule (threshold 80: ?threshold=80, as today's default); "
        "after: the rule (the default threshold for the archive's size); best stranger, right person: the "
        "similarity of the best match of anyone else, of the right person (?threshold=0&max=20)"
    )
    head = [
        ("strangers", 10),
        ("faces", 22),
        ("threshold", 12),
        ("right named", 16),
        ("false names/search", 20),
        ("only strangers", 16),
        ("best stranger max / p50", 25),
        ("right person min / p50", 24),
    ]
    print("".join(f"{h:>{w}}" for h, w in head))
    under = ["", "", "", *["before / after"] * 3, "", ""]
    print("".join(f"{s:>{w}}" for s, (_, w) in zip(under, head, strict=True)))
    for result in results:
        cells = [
            f"{result.strangers:,}",
            span(result.faces, "{:,}"),
            span(result.thresholds, "{:g}"),
            f"{right_named(result, result.before)} / {right_named(result, result.after)}",
            f"{false_per_search(result.before):.2f} / {false_per_search(result.after):.2f}",
            f"{only_strangers(result.before)} / {only_strangers(result.after)}",
            f"{max(result.best_stranger):.1f} / {statistics.median(result.best_stranger):.1f}",
            f"{min(result.best_right):.1f} / {statistics.median(result.best_right):.1f}",
        ]
        print("".join(f"{c:>{w}}" for c, (_, w) in zip(cells, head, strict=True)))
    largest = results[-1]
    expected = naming.expected_strangers(max(largest.best_stranger), max(largest.faces), STRANGERS)
    print(
        f"At {largest.strangers:,} strangers the best one scores {max(largest.best_stranger):.1f}; the rule's stranger "
        f"model expects {expected:,.3g} face(s) of {max(largest.faces):,} to score as high (about 1 would mean it fits "
        "the seeded strangers exactly; more: it overstates them)."
    )
    for result in results:
        missed = [q for q, o in zip(result.queries, result.after, strict=True) if q.indexed and o.right not in o.names]
        if missed:
            print(
                f"  {result.strangers:,}: the rule did not name "
                + "; ".join(f"{q.person} ({q.photo}, {q.variant})" for q in missed)
            )


def span(values: list, form: str) -> str:
    """The values' range, or the one value."""
    low, high = min(values), max(values)
    return form.format(low) if low == high else f"{form.format(low)}-{form.format(high)}"


def right_named(result: SizeResult, outcomes: list[Outcome]) -> str:
    named = sum(1 for q, o in zip(result.queries, outcomes, strict=True) if q.indexed and o.right in o.names)
    return f"{named}/{sum(q.indexed for q in result.queries)}"


def false_per_search(outcomes: list[Outcome]) -> float:
    return sum(len(o.false) for o in outcomes) / len(outcomes)


def only_strangers(outcomes: list[Outcome]) -> int:
    return sum(1 for o in outcomes if o.names and o.right not in o.names)


def verdict(results: list[SizeResult]) -> list[str]:
    """The issue's "done when", for the sizes run."""
    first, last = results[0], results[-1]
    failures = []
    if any(o.false for o in last.after):
        failures.append(f"at {last.strangers:,} strangers the rule named a stranger")
    if right_named(last, last.after) != right_named(first, first.after):
        failures.append(
            f"the rule named the right person {right_named(last, last.after)} at {last.strangers:,} strangers, "
            f"{right_named(first, first.after)} at {first.strangers:,}"
        )
    if right_named(first, first.after) != right_named(first, first.before):
        failures.append(f"at {first.strangers:,} strangers the rule names the right person less often than today's")
    named_stranger = any(o.false for o in last.after)
    as_often = right_named(last, last.after) == right_named(first, first.after)
    print(
        f"at {last.strangers:,} strangers the rule names no stranger: {'no' if named_stranger else 'yes'}; "
        f"names the right person as often as at {first.strangers:,}: {'yes' if as_often else 'no'}"
    )
    return failures


if __name__ == "__main__":
    sys.exit(main())
