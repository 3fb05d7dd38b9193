"""make simulate-aws: an AWS stage at volume, simulated.

Runs the project's own code (the queue's workers, the shared pace, the
circuit breaker, the re-drive, deletes, the search budget, the scheduled
check) over the in-memory fakes, with a virtual clock and models of S3's
events, SQS, Lambda's SQS event source, Rekognition's quotas and outages
and DynamoDB (chalicelib/ops/aws_volume.py says what each models, and how):

    python -m chalicelib.ops.simulate_aws --photos 100000 --tps 5      (make simulate-aws N=100000 TPS=5)
    python -m chalicelib.ops.simulate_aws --outage 12 --outage-kind hang
    python -m chalicelib.ops.simulate_aws --scenario deletes-api
        (or deletes-s3, searches, two-stages[-one-pace], check)
    python -m chalicelib.ops.simulate_aws --table --jobs 2
        (make simulate-aws TABLE=1: docs/deploy.md's tables)

An import prints the photos indexed, failed and pending once settled, the
time to settle against the quota-limited minimum (plus any outage), the
alarms that went off, Lambda invocations and IndexFaces calls a photo, and
what it all costs at list prices."""

import argparse
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

from chalicelib.ops import aws_volume
from chalicelib.ops.aws_volume import NO_FAULTS, Faults, Outage, Result, Scenario, simulate

OUTAGE_START = 600.0  # an outage begins 10 minutes into the import


@dataclass
class Row:
    """One run of the tables: what it is, and how to run it."""

    label: str
    kind: str = "import"  # import, deletes, searches, two-stages, check
    photos: int = 100_000
    tps: float = 5
    options: dict = field(default_factory=dict)


def crashing(photos: int, how_many: int, seed: int) -> frozenset[str]:
    """`how_many` photos, chosen by the seed, that kill any worker indexing them."""
    return frozenset(f"photos/{i:07d}.png" for i in random.Random(seed).sample(range(photos), how_many))


TABLE = [
    Row("the happy path", photos=100_000, tps=5),
    Row("the happy path", photos=100_000, tps=50),
    Row("IndexFaces 0.8 s, a burst of 1 call", photos=100_000, tps=5, options={"index_seconds": 0.8, "burst_calls": 1}),
    Row(
        "IndexFaces 0.8 s, a burst of 1 call", photos=100_000, tps=50, options={"index_seconds": 0.8, "burst_calls": 1}
    ),
    Row(
        "IndexFaces 0.8 s, a burst of 2 calls", photos=100_000, tps=5, options={"index_seconds": 0.8, "burst_calls": 2}
    ),
    Row("10 photos that kill their worker", photos=10_000, tps=5, options={"crashing": 10}),
    Row("Rekognition 5xx for 1 h", photos=30_000, tps=5, options={"outage": (1, "5xx")}),
    Row("Rekognition throttling for 1 h", photos=30_000, tps=5, options={"outage": (1, "throttle")}),
    Row("Rekognition hanging for 1 h", photos=30_000, tps=5, options={"outage": (1, "hang")}),
    Row("Rekognition 5xx for 12 h", photos=100_000, tps=5, options={"outage": (12, "5xx")}),
    Row("Rekognition throttling for 12 h", photos=30_000, tps=5, options={"outage": (12, "throttle")}),
    Row("Rekognition hanging for 12 h", photos=30_000, tps=5, options={"outage": (12, "hang")}),
    Row("two stages at 5/s on a 5/s quota, a pace each", kind="two-stages", photos=50_000, options={"shared": False}),
    Row("two stages at 5/s on a 5/s quota, one pace", kind="two-stages", photos=50_000, options={"shared": True}),
    Row("a collection that fills up (90,000 faces)", photos=100_000, tps=5, options={"collection_limit": 90_000}),
    Row("a backlog of 1M photos", photos=1_000_000, tps=5),
    Row("deletes through the API at 50/s", kind="deletes", photos=10_000, options={"how": "api", "delete_tps": 5}),
    Row("`aws s3 rm --recursive`", kind="deletes", photos=10_000, options={"how": "s3", "delete_tps": 5}),
    Row("`aws s3 rm --recursive`", kind="deletes", photos=10_000, options={"how": "s3", "delete_tps": 50}),
    Row("searches at 10/s, both methods, faces=all", kind="searches", options={"budget": True}),
    Row("the same without the budget (as before)", kind="searches", options={"budget": False}),
    Row("the scheduled check on 10M faces", kind="check", options={"faces": 10_000_000}),
]


def scenario_of(row: Row, seed: int, faults: Faults | None = None) -> Scenario:
    options = dict(row.options)
    faults = faults or Faults()
    if "crashing" in options:
        faults = Faults(crashing=crashing(row.photos, options.pop("crashing"), seed))
    if "outage" in options:
        hours, kind = options.pop("outage")
        faults = Faults(outage=Outage(hours, kind, OUTAGE_START))
    return Scenario(photos=row.photos, tps=row.tps, seed=seed, faults=faults, name=row.label, **options)


def run(row: Row, seed: int, faults: Faults | None = None) -> tuple[Row, object, float]:
    started = time.perf_counter()
    if row.kind == "import":
        result = simulate(scenario_of(row, seed, faults))
    elif row.kind == "two-stages":
        result = aws_volume.simulate_two_stages(row.photos, row.tps, row.options["shared"], seed)
    elif row.kind == "deletes":
        result = aws_volume.simulate_deletes(row.photos, row.options["how"], row.options["delete_tps"], seed)
    elif row.kind == "searches":
        result = aws_volume.simulate_searches(10, 600, row.options["budget"], seed)
    else:
        result = aws_volume.simulate_check(row.options["faces"], seed)
    return row, result, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100_000, help="how many photos are uploaded (default 100000)")
    parser.add_argument("--tps", type=float, default=5, help="FACEPRINT_INDEX_TPS, and the account's quota (default 5)")
    parser.add_argument("--quota", type=float, help="the account's IndexFaces quota, when it differs from --tps")
    parser.add_argument("--upload-rate", type=float, default=0, help="photos uploaded a second (default: all at once)")
    parser.add_argument("--burst-seconds", type=float, default=1.0, help="seconds of quota Rekognition's bucket holds")
    parser.add_argument("--burst-calls", type=int, help="calls Rekognition's bucket holds (instead of --burst-seconds)")
    parser.add_argument("--index-seconds", type=float, default=0.5, help="IndexFaces' median latency (default 0.5)")
    parser.add_argument("--outage", type=float, help="hours Rekognition fails every call, from minute 10")
    parser.add_argument("--outage-kind", choices=("5xx", "throttle", "hang"), default="5xx")
    parser.add_argument("--crashing", type=int, default=0, help="photos that kill any worker indexing them")
    parser.add_argument("--collection-limit", type=int, help="the most faces the collection holds")
    parser.add_argument(
        "--scenario", choices=("deletes-api", "deletes-s3", "searches", "two-stages", "two-stages-one-pace", "check")
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-faults", action="store_true", help="no duplicate, lost or late events, errors or crashes")
    parser.add_argument("--table", action="store_true", help="every scenario of docs/deploy.md's tables")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (--table)")
    args = parser.parse_args(argv)
    if args.photos < 1 or args.tps <= 0 or (args.quota is not None and args.quota <= 0):
        parser.error("--photos, --tps and --quota must be above 0")
    started = time.perf_counter()
    rows = TABLE if args.table else [_row(args)]
    faults = NO_FAULTS if args.no_faults else None
    done = []
    if args.jobs > 1 and len(rows) > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            # The longest first (the 1M backlog); each printed as it ends, the tables in their order.
            futures = [pool.submit(run, row, args.seed) for row in sorted(rows, key=lambda r: -r.photos)]
            for future in as_completed(futures):
                done.append(_printed(future.result()))
        done.sort(key=lambda d: rows.index(d[0]))
    else:
        done = [_printed(run(row, args.seed, faults)) for row in rows]
    if args.table:
        print()
        print(tables(done))
        print(f"\n(`make simulate-aws TABLE=1`, seed {args.seed}: {time.perf_counter() - started:.0f} s)")
    return 0 if all(_fine(result) for _, result, _ in done) else 1


def _printed(done: tuple[Row, object, float]) -> tuple[Row, object, float]:
    _, result, seconds = done
    print(result.report())
    print(f"  (simulated in {seconds:.1f} s)", flush=True)
    return done


def _row(args) -> Row:
    if args.scenario in ("deletes-api", "deletes-s3"):
        how = args.scenario.split("-")[1]
        return Row(args.scenario, "deletes", args.photos, options={"how": how, "delete_tps": args.tps})
    if args.scenario == "searches":
        return Row("searches", "searches", options={"budget": True})
    if args.scenario in ("two-stages", "two-stages-one-pace"):
        shared = args.scenario == "two-stages-one-pace"
        return Row(args.scenario, "two-stages", args.photos, args.tps, options={"shared": shared})
    if args.scenario == "check":
        return Row("check", "check", options={"faces": args.photos})
    options = {
        "quota": args.quota,
        "upload_rate": args.upload_rate,
        "burst_seconds": args.burst_seconds,
        "burst_calls": args.burst_calls,
        "index_seconds": args.index_seconds,
        "collection_limit": args.collection_limit,
    }
    if args.outage:
        options["outage"] = (args.outage, args.outage_kind)
    if args.crashing:
        options["crashing"] = args.crashing
    return Row("", photos=args.photos, tps=args.tps, options=options)


def _fine(result) -> bool:
    if isinstance(result, Result):
        limited = result.scenario.collection_limit is not None
        return result.all_final and (limited or result.failed == len(result.scenario.faults.crashing))
    return True


def tables(done: list[tuple[Row, object, float]]) -> str:
    imports = [(row, r) for row, r, _ in done if isinstance(r, Result)]
    lines = [
        "| scenario | photos | IndexFaces quota | settled after | quota-limited minimum (+ outage) | ratio | failed"
        " | innocent photos dead-lettered | alarms | Lambda invocations a photo | IndexFaces calls a photo | cost |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row, r in imports:
        minimum = r.minimum_seconds + r.outage_seconds
        lines.append(
            f"| {row.label} | {r.scenario.photos:,} | {row.tps:g}/s | {_short(r.settled_seconds)} | {_short(minimum)}"
            f" | {r.ratio:.3f} | {r.failed:,} | {r.innocent_dead_letters} | {', '.join(r.alarms) or 'none'}"
            f" | {r.invocations_per_photo:.3f} | {r.calls_per_photo:.4f} | ${sum(r.costs().values()):,.2f} |"
        )
    backlog = [r for _, r in imports if r.scenario.photos >= 1_000_000]
    if backlog:
        c = backlog[0].counts
        lines += [
            "",
            f"The 1M backlog: the re-drive read at most {c.redrive_read_units_max:.1f} read units a run with the queue"
            f" up to {c.redrive_backlog_max:,} messages; photos due over a day up to {c.pending_too_long_max:,}"
            f" (counted, never read); stuck in {c.stuck_runs} runs.",
        ]
    others = [(row, r) for row, r, _ in done if not isinstance(r, Result)]
    if others:
        lines += ["", "| scenario | what happened |", "|---|---|"]
        for row, r in others:
            summary = " ".join(line.strip() for line in r.report().splitlines()[1:])
            lines.append(f"| {row.label} | {summary} |")
    return "\n".join(lines)


def _short(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    sys.exit(main())
