"""make simulate-aws: a 100,000-photo import into an AWS stage, simulated.

Runs the project's own indexing code (the queue's workers, their pace, the
re-drive) over the in-memory fakes, with a virtual clock and models of S3's
events, SQS, Lambda's SQS event source and Rekognition's quota
(tests/support/aws_volume.py says what each models, and how):

    python scripts/simulate_aws.py --photos 100000 --tps 5      (make simulate-aws N=100000 TPS=5)
    python scripts/simulate_aws.py --table                      (make simulate-aws TABLE=1: the README's table)

It prints the photos indexed, failed and pending once settled, the time to
settle against the quota-limited minimum, Lambda invocations and IndexFaces
calls a photo, and what it all costs at list prices."""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.aws_volume import Faults, Result, Scenario, simulate  # noqa: E402

TABLE_PHOTOS = (1_000, 10_000, 100_000)
TABLE_TPS = (5, 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=100_000, help="how many photos are uploaded (default 100000)")
    parser.add_argument("--tps", type=float, default=5, help="FACEPRINT_INDEX_TPS, and the account's quota (default 5)")
    parser.add_argument("--quota", type=float, help="the account's IndexFaces quota, when it differs from --tps")
    parser.add_argument("--upload-rate", type=float, default=0, help="photos uploaded a second (default: all at once)")
    parser.add_argument("--burst-seconds", type=float, default=1.0, help="seconds of quota Rekognition's bucket holds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-faults", action="store_true", help="no duplicate, lost or late events, errors or crashes")
    parser.add_argument("--table", action="store_true", help="1,000, 10,000 and 100,000 photos at 5 and 50 TPS")
    args = parser.parse_args(argv)
    if args.photos < 1 or args.tps <= 0 or (args.quota is not None and args.quota <= 0):
        parser.error("--photos, --tps and --quota must be above 0")
    faults = Faults(0, 0, 0, 0, 0) if args.no_faults else Faults()
    runs = [(photos, tps) for tps in TABLE_TPS for photos in TABLE_PHOTOS] if args.table else [(args.photos, args.tps)]
    results = []
    for photos, tps in runs:
        scenario = Scenario(
            photos=photos,
            tps=tps,
            quota=args.quota,
            upload_rate=args.upload_rate,
            seed=args.seed,
            faults=faults,
            burst_seconds=args.burst_seconds,
        )
        started = time.perf_counter()
        result = simulate(scenario)
        print(result.report())
        print(f"  (simulated in {time.perf_counter() - started:.1f} s)", flush=True)
        results.append(result)
    if args.table:
        print()
        print(table(results))
    return 0 if all(r.all_final and not r.failed for r in results) else 1


def table(results: list[Result]) -> str:
    rows = [
        "| photos | IndexFaces quota | settled after | quota-limited minimum | ratio | failed | pending"
        " | Lambda invocations a photo | IndexFaces calls a photo | cost |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.scenario.photos:,} | {r.scenario.tps:g}/s | {_short(r.settled_seconds)}"
            f" | {_short(r.minimum_seconds)} | {r.ratio:.3f} | {r.failed} | {r.pending}"
            f" | {r.invocations_per_photo:.3f} | {r.calls_per_photo:.4f} | ${sum(r.costs().values()):,.2f} |"
        )
    return "\n".join(rows)


def _short(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


if __name__ == "__main__":
    sys.exit(main())
