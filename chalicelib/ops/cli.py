"""Maintenance commands for any stage:

    python -m chalicelib.ops.cli check [--stage local] [--repair]
    python -m chalicelib.ops.cli reindex [--stage local] [--from-stage STAGE]
    python -m chalicelib.ops.cli import DIR [--stage local] [--names-from-folders]
    python -m chalicelib.ops.cli seed FACES [--stage local]
    python -m chalicelib.ops.cli unseed [--stage local]
    python -m chalicelib.ops.cli backup FOLDER [--stage local]
    python -m chalicelib.ops.cli restore FOLDER [--stage local]
    python -m chalicelib.ops.cli erase PERSON [--photos none|own|all] [--name NAME] [--backup DIR] [--stage local]
    python -m chalicelib.ops.cli check-erasure PERSON [--name NAME] [--backup FOLDER ...] [--stage local]

(`make check-consistency`, `make reindex`, `make import`, `make seed`, `make unseed`, `make backup`,
`make restore`, `make erase`, `make check-erasure`). A stage's settings come from
.chalice/config.json; variables already set in the environment win.
"""

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core import erasure, logs
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError, FaceprintError
from chalicelib.embedded import private
from chalicelib.ops import aws_access, backup, backup_archive, erased_files, importer, maintenance, seeding
from chalicelib.ops.progress import Bar, Progress
from chalicelib.ops.serve import interrupted_status
from chalicelib.wiring import services

CONFIG = Path(__file__).resolve().parents[2] / ".chalice" / "config.json"
LISTED_AT_MOST = 20  # lines of a list in a summary; more are grouped by reason

EXIT_STATUSES = """\
exit status:
  0  done: every photo the API takes was imported (files that are not photos, and photos
     refused as they are, e.g. corrupt, are listed and do not count as failures)
  1  import: some photos failed for a reason that may pass (run it again to retry them);
     check: disagreements found (and, with --repair, some left)
  2  it could not run: no such folder, a stage that is not set up, a bad argument
  130  stopped with Ctrl-C when run by hand (under make, make reports the interruption);
     every command carries on where it stopped when run again
"""

# What each command says when stopped with Ctrl-C.
STOPPED = {
    "import": "Stopped. What was imported is kept; run the same command again to carry on where it stopped.",
    "reindex": "Stopped. Run it again: it carries on from the photo it stopped at.",
    "check": "Stopped. A repair stopped part way is finished by running it again.",
    "seed": "Stopped. The faces seeded so far stay (whole batches); `make unseed` removes every one.",
    "unseed": "Stopped. Run it again to remove the synthetic faces that are left.",
    "backup": "Stopped. The backup folder still holds the previous backup, whole; run it again to take this one.",
    "restore": "Stopped part way: empty the data folder, then run the restore again.",
    "erase": "Stopped. Run the same command again: the erasure carries on where it stopped.",
    "check-erasure": "Stopped.",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.ops.cli",
        description=__doc__.split("\n\n")[0],
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="compare photos, records and collection; report disagreements")
    check.add_argument("--stage", default="local")
    check.add_argument("--repair", action="store_true", help="fix every disagreement found")
    reindex = commands.add_parser("reindex", help="rebuild the collection and the records from the stored photos")
    reindex.add_argument("--stage", default="local")
    reindex.add_argument("--from-stage", help="copy the photos of this stage in first (move between engines)")
    load = commands.add_parser(
        "import",
        help="index every photo under a folder (again only what changed)",
        epilog=EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("folder", type=Path)
    load.add_argument("--stage", default="local")
    load.add_argument("--names-from-folders", action="store_true", help="name each photo after its folder")
    seed = commands.add_parser("seed", help="add synthetic faces to the embedded archive, to try it at scale")
    seed.add_argument("faces", type=_whole_number, help="how many (one per synthetic image)")
    seed.add_argument("--stage", default="local")
    unseed = commands.add_parser("unseed", help="remove every synthetic face `seed` added")
    unseed.add_argument("--stage", default="local")
    save = commands.add_parser("backup", help="back the embedded archive up into a folder (again: only new photos)")
    save.add_argument("folder", type=Path)
    save.add_argument("--stage", default="local")
    restore = commands.add_parser("restore", help="restore a backup into the stage's empty data folder, and check it")
    restore.add_argument("folder", type=Path)
    restore.add_argument("--stage", default="local")
    forget = commands.add_parser("erase", help="erase a person for good, from the archive and its backups")
    forget.add_argument("person", help="their personId")
    forget.add_argument("--photos", choices=erasure.PHOTO_CHOICES, default="none", help="their photos: keep, own, all")
    forget.add_argument("--name", help="their name, when no record knows it any more (a person deleted before)")
    forget.add_argument("--backup", type=Path, action="append", default=[], help="a backup folder to purge too")
    forget.add_argument("--stage", default="local")
    proof = commands.add_parser("check-erasure", help="what of a person the archive and its backups still hold")
    proof.add_argument("person", help="their personId")
    proof.add_argument("--name", help="their name, to look for it too (no record keeps it after an erasure)")
    proof.add_argument("--backup", type=Path, action="append", default=[], help="a backup folder to look in too")
    proof.add_argument("--stage", default="local")
    args = parser.parse_args(argv)
    os.umask(private.UMASK)  # log, progress and journal files: the owner's alone, like the archive
    try:
        return _run(args)
    except _Stopped:  # stopped watching an import: it said so
        return interrupted_status()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        print(STOPPED[args.command], file=sys.stderr)
        return interrupted_status()
    except ConfigurationError as e:
        print(e, file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as e:  # no credentials or region, credentials refused, no network
        problem = aws_access.aws_problem(e, os.environ.get("AWS_DEFAULT_REGION"))
        print(f"{problem} {STOPPED[args.command]}", file=sys.stderr)
        return 2
    except FaceprintError as e:  # a service that stays unavailable, a throttle that outlasts the retries
        print(f"Stopped: {e} {STOPPED[args.command]}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a folder it may not write: one line, not a traceback
        where = f" ({e.filename})" if e.filename else ""
        print(f"Stopped: {e.strerror or e}{where}. {STOPPED[args.command]}", file=sys.stderr)
        return 2


def _run(args) -> int:
    settings = stage_settings(args.stage)
    if args.command in ("backup", "restore") and settings.engine != "local":
        raise ConfigurationError(
            f"make {args.command} is for the embedded stage; stage {args.stage!r} is on AWS, where DynamoDB's "
            "point-in-time recovery and the bucket's versioning keep the archive (docs/deploy.md, 'Backups')."
        )
    for stage in filter(None, (args.stage, getattr(args, "from_stage", None))):
        _reach(stage_settings(stage))
    if args.command in ("backup", "restore"):
        return _backup(settings, args) if args.command == "backup" else _restore(settings, args)
    if args.command in ("erase", "check-erasure"):
        return _erase(args) if args.command == "erase" else _check_erasure(args)
    svc = services(settings)
    if args.command == "import":
        return _import(svc, args)
    if args.command in ("seed", "unseed"):
        return _seed(svc, args) if args.command == "seed" else _unseed(svc, args)
    if args.command == "check":
        under_way = svc.records.erasures_under_way()
        if under_way and args.repair:
            finished = erasure.finish_under_way(svc)
            print(f"finished {len(finished)} erasure(s) left halfway")
        elif under_way:
            print(f"{len(under_way)} erasure(s) left halfway: --repair (REPAIR=1) finishes them")
        threads = maintenance.CHECK_THREADS if svc.queue is not None else 1  # AWS: its lookups are requests
        found = maintenance.check(svc, threads)
        for disagreement in found:
            print(disagreement)
        print(f"{len(found)} disagreement(s) in stage {args.stage!r}")
        if found and args.repair:
            maintenance.repair(svc, found)
            left = maintenance.check(svc, threads)
            print(f"repaired; {len(left)} left")
            return 1 if left else 0
        return 1 if found else 0
    source = services(stage_settings(args.from_stage)) if args.from_stage else None
    progress = svc.settings.data_dir / f"reindex-{args.stage}.progress.json"
    started = time.monotonic()
    bar = Bar("photos")
    with photo_logs(svc.settings.data_dir, "reindex", args.stage, bar.at_terminal) as log_file:
        try:
            count = maintenance.reindex(
                svc,
                progress,
                source,
                on_photo=lambda done, total, key: bar.show(Progress(done, total, started), key[:40]),
            )
        finally:
            bar.end()
    print(f"reindexed {count} photo(s) in stage {args.stage!r}" + _logged(log_file))
    return 0


@contextmanager
def photo_logs(data_dir: Path, command: str, stage: str, at_terminal: bool) -> Iterator[Path | None]:
    """Where the JSON line of each photo goes while a command runs. At a
    terminal, to `<data dir>/<command>-<stage>.log` (appended), so the
    progress bar stays readable; piped or redirected, to stderr as always,
    one line each, which is what a pipe or a log file wants."""
    if not at_terminal:
        yield None
        return
    path = data_dir / f"{command}-{stage}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    warnings = logging.getLogger("faceprint")  # indexing's warnings (a failed attempt, its traceback)
    with path.open("a", encoding="utf-8") as log:
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        previous, propagates = logs.send_to(log), warnings.propagate
        warnings.addHandler(handler)
        warnings.propagate = False
        try:
            yield path
        finally:
            warnings.removeHandler(handler)
            warnings.propagate = propagates
            logs.send_to(previous)


def _logged(path: Path | None) -> str:
    return f" (each photo's log line: {path})" if path else ""


def _import(svc, args) -> int:
    if not args.folder.is_dir():
        print(f"No folder {args.folder}: give DIR=<a folder of photos>.", file=sys.stderr)
        return 2
    journal = importer.journal_for(svc.settings.data_dir, args.stage, args.folder)
    bar = Bar("photos")
    with photo_logs(svc.settings.data_dir, "import", args.stage, bar.at_terminal) as log_file:
        try:
            summary = importer.import_folder(
                svc,
                args.folder,
                journal,
                args.names_from_folders,
                on_progress=lambda p: bar.show(p, f"{p.faces} faces, {p.failed} not imported"),
            )
        finally:
            bar.end()
    print(
        f"{summary.photos} photo(s) under {args.folder}: {summary.uploaded} imported, "
        f"{summary.unchanged} unchanged since the last import, {summary.faces} face(s) indexed, "
        f"{len(summary.refused)} refused, {len(summary.failed)} failed" + _logged(log_file)
    )
    _list(f"{len(summary.skipped)} file(s) skipped, not photos", summary.skipped)
    _list(f"{len(summary.refused)} photo(s) refused as they are (fix the file to import it)", summary.refused)
    _list(f"{len(summary.failed)} photo(s) failed; run the same command again to retry them", summary.failed)
    failed = bool(summary.failed)
    if not svc.index_on_upload:
        failed |= _watch(svc, args.stage, summary)
    return 1 if failed else 0


def _watch(svc, stage: str, summary: importer.Summary) -> bool:
    """On an AWS stage: follow the indexing of what this import holds and
    is not settled yet, until it is (or Ctrl-C). Whether any failed."""
    keys = importer.pending_among(svc, summary.keys)
    if not keys:
        return False
    print(
        f"{len(keys)} photo(s) of this import are pending in stage {stage!r}: its S3 events index them. "
        "Watching (Ctrl-C stops watching; the stage goes on indexing)."
    )
    started = time.monotonic()
    bar = Bar("photos settled")
    try:
        indexing = importer.watch(
            svc,
            keys,
            on_progress=lambda i: bar.show(
                Progress(i.settled, i.total, started),
                f"indexed {i.indexed + i.no_faces}, pending {i.pending}, failed {len(i.failed) + len(i.refused)}",
            ),
        )
    except KeyboardInterrupt:
        bar.end()
        print(
            f"Stopped watching. Stage {stage!r} goes on indexing; run the same command again to watch what "
            "is still pending (it uploads nothing again).",
            file=sys.stderr,
        )
        raise _Stopped() from None
    bar.end()
    print(
        f"Indexed: {indexing.indexed} photo(s) with {indexing.faces} face(s), {indexing.no_faces} without a face, "
        f"{len(indexing.refused)} refused, {len(indexing.failed)} failed, {indexing.gone} deleted meanwhile"
    )
    _list(f"{len(indexing.refused)} photo(s) the engine refused", indexing.refused)
    _list(f"{len(indexing.failed)} photo(s) failed to index; put them again to retry", indexing.failed)
    return bool(indexing.failed)


class _Stopped(KeyboardInterrupt):
    """The user stopped watching: what was to be done is done."""


def _list(title: str, items: list[tuple[str, str]]) -> None:
    """`title`, then each item's `path: reason`; a long list by reason."""
    if not items:
        return
    print(f"{title}:")
    if len(items) <= LISTED_AT_MOST:
        for path, reason in items:
            print(f"  {path}: {reason}")
        return
    for reason, count in Counter(reason for _, reason in items).most_common():
        some = [path for path, why in items if why == reason][:3]
        print(f"  {count} x {reason}: {', '.join(some)}{', ...' if count > len(some) else ''}")


def _backup(settings: Settings, args) -> int:
    bar = Bar("photos")
    started = time.monotonic()
    try:
        report = backup.backup(
            settings.data_dir, args.folder, on_photo=lambda done, total: bar.show(Progress(done, total, started))
        )
    finally:
        bar.end()
    print(
        f"Backed up stage {args.stage!r} ({settings.data_dir}) into {args.folder} in {report.seconds:.1f} s: "
        f"{report.images:,} images, {report.faces:,} faces, {report.people:,} people; "
        f"{report.photos:,} photos ({_size(report.photo_bytes)}), {report.copied:,} of them copied now "
        f"({_size(report.copied_bytes)}), {report.removed:,} no longer recorded removed; "
        f"the database ({_size(report.database_bytes)}) copied in {report.database_seconds:.1f} s."
    )
    if report.missed:
        print(
            f"{len(report.missed)} photo(s) were deleted or replaced at the moment the backup was taken: "
            "`make restore` finishes their deletion (the next backup holds a replacement)."
        )
    for folder in backup.prune(settings.data_dir, settings.backup_keep_days):
        print(f"Deleted the backup in {folder}: taken more than {settings.backup_keep_days} days ago (retention).")
    return 0


def _erase(args) -> int:
    """The erasure, then the backups: those `make backup` took of this
    archive and those named. The receipt, as JSON, on stdout."""
    settings = stage_settings(args.stage)
    backups = _backup_folders(settings, args)
    # A person deleted before has no name left in the archive: a backup may still know it.
    name = args.name or next(filter(None, (backup.person_name(folder, args.person) for folder in backups)), None)
    receipt = erasure.erase_person(services(settings), args.person, args.photos, name=name)
    purged, unreachable = [], []
    for folder in backups:
        if not (folder / backup.DATABASE).is_file():
            unreachable.append(str(folder))
            continue
        backup.purge_person(folder, args.person, args.photos, name=name)
        purged.append(str(folder))
    receipt["copies"] = [c for c in receipt.get("copies", []) if not any(f in c["copy"] for f in purged)]
    receipt["backups"] = {"purged": purged, "notFound": unreachable}
    print(json.dumps({"erasure": receipt}, indent=2, ensure_ascii=False))
    print(
        f"Erased person {args.person!r} from stage {args.stage!r}: {receipt['removed']['faces']} face(s), "
        f"{receipt['removed']['photos']} photo(s), {receipt['removed']['names']} metadata field(s) naming them; "
        f"{len(purged)} backup(s) purged"
        + (f", {len(unreachable)} not found: {', '.join(unreachable)}" if unreachable else "")
        + ". `make check-erasure PERSON=... NAME=...` proves it.",
        file=sys.stderr,
    )
    return 0 if receipt["complete"] and not unreachable else 1


def _check_erasure(args) -> int:
    """Every trace of the person the stage and its backups still hold (none: exit 0)."""
    settings = stage_settings(args.stage)
    backups = _backup_folders(settings, args)
    found = erasure.check_erased(services(settings), args.person, args.name)
    if settings.engine == "local":
        found += [f"{where}: holds their name" for where in erased_files.naming(settings.data_dir, args.name)]
    for folder in backups:
        if (folder / backup.DATABASE).is_file():
            with backup_archive.opened(folder) as svc:
                found += [
                    f"the backup in {folder}: {trace}" for trace in erasure.check_erased(svc, args.person, args.name)
                ]
            found += [f"{where}: holds their name" for where in erased_files.naming(folder, args.name)]
    for trace in found:
        print(trace)
    print(f"{len(found)} trace(s) of person {args.person!r} in stage {args.stage!r} and {len(backups)} backup(s)")
    return 1 if found else 0


def _backup_folders(settings: Settings, args) -> list[Path]:
    if settings.engine != "local":
        if args.backup:
            raise ConfigurationError("--backup is for the embedded stage: on AWS the backups are the services' own.")
        return []
    registered = [Path(entry["folder"]) for entry in backup.registered_backups(settings.data_dir)]
    return list(dict.fromkeys([*registered, *(folder.resolve() for folder in args.backup)]))


def _restore(settings: Settings, args) -> int:
    started = time.monotonic()
    bar = Bar("photos")
    try:
        photos = backup.restore_files(
            args.folder, settings.data_dir, on_photo=lambda done, total: bar.show(Progress(done, total, started))
        )
    finally:
        bar.end()
    counts = backup.counts(settings.data_dir)
    print(
        f"Restored {counts['images']:,} images, {counts['faces']:,} faces, {counts['people']:,} people and "
        f"{photos:,} photos from {args.folder} into {settings.data_dir} in {time.monotonic() - started:.1f} s."
    )
    checked = time.monotonic()
    svc = services(settings)
    found = maintenance.check(svc)
    if found:
        # Operations in flight when the backup was taken, as a crash leaves them: finish them.
        print(f"{len(found)} operation(s) were in flight when the backup was taken; finishing them:")
        for disagreement in found:
            print(f"  {disagreement}")
        maintenance.repair(svc, found)
        found = maintenance.check(svc)
    built = time.monotonic()
    svc.engine.collection.retrain()  # the derived index, so the first search need not build it
    print(
        f"{len(found)} disagreement(s) in stage {args.stage!r} (make check-consistency, {built - checked:.1f} s); "
        f"the collection's index built in {time.monotonic() - built:.1f} s; {time.monotonic() - started:.1f} s in all."
    )
    return 1 if found else 0


def _size(count: int) -> str:
    return f"{count / 1e6:,.1f} MB" if count < 1e9 else f"{count / 1e9:,.2f} GB"


def _seed(svc, args) -> int:
    started = time.monotonic()
    bar = Bar("faces")
    try:
        run = seeding.seed(svc, args.faces, on_progress=bar.show)
    finally:
        bar.end()
    seconds = time.monotonic() - started
    print(
        f"added {args.faces:,} synthetic faces (keys synthetic/{run}-...) to stage {args.stage!r} in {seconds:.1f} s "
        f"({args.faces / seconds:,.0f} faces/s); its collection holds {svc.engine.describe()['faces']:,} faces. "
        "A running server searches them from its next search; `make unseed` removes them."
    )
    return 0


def _unseed(svc, args) -> int:
    started = time.monotonic()
    bar = Bar("synthetic faces removed")
    try:
        removed = seeding.unseed(svc, on_progress=bar.show)
    finally:
        bar.end()
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


def _reach(settings: Settings) -> None:
    """Stop before any work (and any progress bar) if the stage cannot be
    reached: its data folder cannot be used, or on AWS no region or no
    credentials are to be found."""
    if settings.engine == "local":
        private.data_folder(settings.data_dir)
        return
    try:
        aws_access.check_access(settings.region)
    except BotoCoreError as e:
        problem = aws_access.aws_problem(e, settings.region)
        raise ConfigurationError(f"Stage {settings.stage!r} is on AWS: {problem}") from e


def stage_settings(stage: str) -> Settings:
    config = json.loads(CONFIG.read_text())
    if stage not in config["stages"]:
        raise SystemExit(f"No stage {stage!r} in {CONFIG}: one of {', '.join(config['stages'])}.")
    env = {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}
    return Settings.from_env({**env, **os.environ, "FACEPRINT_STAGE": stage})


if __name__ == "__main__":
    sys.exit(main())
