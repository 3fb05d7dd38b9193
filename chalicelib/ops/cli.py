"""Maintenance commands for any stage:

    python -m chalicelib.ops.cli check [--stage local] [--repair]
    python -m chalicelib.ops.cli reindex [--stage local] [--from-stage STAGE]
    python -m chalicelib.ops.cli import DIR [--stage local] [--names-from-folders]
    python -m chalicelib.ops.cli seed FACES [--stage local]
    python -m chalicelib.ops.cli unseed [--stage local]

(`make check-consistency`, `make reindex`, `make import`, `make seed`, `make unseed`). A stage's settings come from
.chalice/config.json; variables already set in the environment win.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.ops import importer, maintenance, seeding
from chalicelib.ops.progress import Progress
from chalicelib.ops.progress import show as show_progress
from chalicelib.wiring import services

CONFIG = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.ops.cli", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="compare photos, records and collection; report disagreements")
    check.add_argument("--stage", default="local")
    check.add_argument("--repair", action="store_true", help="fix every disagreement found")
    reindex = commands.add_parser("reindex", help="rebuild the collection and the records from the stored photos")
    reindex.add_argument("--stage", default="local")
    reindex.add_argument("--from-stage", help="copy the photos of this stage in first (move between engines)")
    load = commands.add_parser("import", help="index every photo under a folder (again only what changed)")
    load.add_argument("folder", type=Path)
    load.add_argument("--stage", default="local")
    load.add_argument("--names-from-folders", action="store_true", help="name each photo after its folder")
    seed = commands.add_parser("seed", help="add synthetic faces to the embedded archive, to try it at scale")
    seed.add_argument("faces", type=_whole_number, help="how many (one per synthetic image)")
    seed.add_argument("--stage", default="local")
    unseed = commands.add_parser("unseed", help="remove every synthetic face `seed` added")
    unseed.add_argument("--stage", default="local")
    args = parser.parse_args(argv)

    svc = services(stage_settings(args.stage))
    if args.command == "import":
        return _import(svc, args)
    if args.command in ("seed", "unseed"):
        try:
            return _seed(svc, args) if args.command == "seed" else _unseed(svc, args)
        except ConfigurationError as e:
            print(e, file=sys.stderr)
            return 2
    if args.command == "check":
        found = maintenance.check(svc)
        for disagreement in found:
            print(disagreement)
        print(f"{len(found)} disagreement(s) in stage {args.stage!r}")
        if found and args.repair:
            maintenance.repair(svc, found)
            left = maintenance.check(svc)
            print(f"repaired; {len(left)} left")
            return 1 if left else 0
        return 1 if found else 0
    source = services(stage_settings(args.from_stage)) if args.from_stage else None
    progress = svc.settings.data_dir / f"reindex-{args.stage}.progress.json"
    started = time.monotonic()
    count = maintenance.reindex(
        svc,
        progress,
        source,
        on_photo=lambda done, total, key: show_progress(Progress(done, total, started), "photos", key[:40]),
    )
    print(f"\nreindexed {count} photo(s) in stage {args.stage!r}")
    return 0


def _import(svc, args) -> int:
    if not args.folder.is_dir():
        print(f"No folder {args.folder}: give DIR=<a folder of photos>.", file=sys.stderr)
        return 2
    journal = importer.journal_for(svc.settings.data_dir, args.stage, args.folder)
    summary = importer.import_folder(
        svc,
        args.folder,
        journal,
        args.names_from_folders,
        on_progress=lambda p: show_progress(p, "photos", f"{p.faces} faces, {p.failed} failed"),
    )
    sys.stderr.write("\n")
    print(
        f"{summary.photos} photo(s) under {args.folder}: {summary.uploaded} imported, "
        f"{summary.unchanged} unchanged since the last import, {summary.faces} face(s) indexed, "
        f"{len(summary.failures)} failure(s)"
    )
    if summary.pending:
        print(f"{summary.pending} photo(s) uploaded to stage {args.stage!r}: its S3 events index them.")
    for path, reason in summary.failures:
        print(f"  {path}: {reason}")
    return 1 if summary.failures else 0


def _seed(svc, args) -> int:
    started = time.monotonic()
    run = seeding.seed(svc, args.faces, on_progress=lambda p: show_progress(p, "faces"))
    seconds = time.monotonic() - started
    sys.stderr.write("\n")
    print(
        f"added {args.faces:,} synthetic faces (keys synthetic/{run}-...) to stage {args.stage!r} in {seconds:.1f} s "
        f"({args.faces / seconds:,.0f} faces/s); its collection holds {svc.engine.describe()['faces']:,} faces. "
        "A running server searches them from its next search; `make unseed` removes them."
    )
    return 0


def _unseed(svc, args) -> int:
    started = time.monotonic()
    removed = seeding.unseed(svc, on_progress=lambda p: sys.stderr.write(f"\r{p.done:,} synthetic faces removed"))
    sys.stderr.write("\n")
    print(
        f"removed {removed:,} synthetic faces from stage {args.stage!r} in {time.monotonic() - started:.1f} s; "
        f"its collection holds {svc.engine.describe()['faces']:,} faces"
    )
    return 0


def _whole_number(text: str) -> int:
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of faces, at least 1 (FACES=1000000)")
    return value


def stage_settings(stage: str) -> Settings:
    config = json.loads(CONFIG.read_text())
    if stage not in config["stages"]:
        raise SystemExit(f"No stage {stage!r} in {CONFIG}: one of {', '.join(config['stages'])}.")
    env = {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}
    return Settings.from_env({**env, **os.environ, "FACEPRINT_STAGE": stage})


if __name__ == "__main__":
    sys.exit(main())
