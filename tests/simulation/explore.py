"""make explore SCHEDULES=N SEED=S: run N schedules of the simulation from
seed S (the seeds S, S+1, ...), stop at the first counterexample and print
it; SEED defaults to a fresh one, which is printed so a run can be repeated."""

import argparse
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path

from tests.simulation.harness import Counterexample, Simulation


def explore(first: int, schedules: int, workdir: Path, report=None) -> int:
    """Runs the schedules; returns how many ran clean before a failure (all
    of them when none failed). Raises Counterexample."""
    report = report or (lambda line: print(line, flush=True))  # progress shows in a log as it runs
    started = time.monotonic()
    for seed in range(first, first + schedules):
        Simulation(seed, workdir=workdir).run()
        done = seed - first + 1
        if done % 1000 == 0 or done == schedules:
            report(f"{done:,} schedules clean ({time.monotonic() - started:.1f} s)")
    return schedules


def main(argv: list[str] | None = None) -> int:
    logging.getLogger("faceprint").setLevel(logging.CRITICAL)
    logging.getLogger("faceprint.lines").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else secrets.randbelow(10**9)
    print(f"exploring {args.schedules:,} schedules from seed {seed}", flush=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        try:
            explore(seed, args.schedules, Path(workdir))
        except Counterexample as e:
            print(e, file=sys.stderr)
            return 1
    print(f"{args.schedules:,} schedules from seed {seed}: no counterexample in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
