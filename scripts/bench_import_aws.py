"""How fast `make import` puts photos into an AWS stage (issue 26: eight
uploads at a time fed 33-36 photos a second, short of a 50 a second quota).

The importer's own code (chalicelib/ops/importer.py: the upload use case,
the journal) over the real photos of ../shared/faces (each copied many
times, at keys of their own), against:

- a stage whose S3 and DynamoDB answer after the latency AWS typically has
  from a host in the region (PUT 60 ms, each DynamoDB call 8 ms: assumed,
  not measured here), so that what limits the import is the number of
  uploads at a time and this machine's CPU;
- moto (boto3 and the real adapters, in this process): the CPU each upload
  costs the client, moto's own work included (an upper bound).

    python scripts/bench_import_aws.py [--photos 600]

It prints photos a second for 8 uploads at a time (as before) and for the
number the importer now takes for a 50 a second stage (importer.aws_uploads)."""

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chalicelib.ops import importer  # noqa: E402
from chalicelib.ops.memory import fake_services  # noqa: E402

FACES = REPO.parent / "shared" / "faces"
S3_PUT_SECONDS = 0.060
DYNAMODB_SECONDS = 0.008


class Delayed:
    """Wraps a store: each call answers after `seconds`."""

    def __init__(self, target, seconds: float) -> None:
        self._target, self._seconds = target, seconds

    def __getattr__(self, name):
        found = getattr(self._target, name)
        if not callable(found):
            return found

        def call(*args, **kwargs):
            time.sleep(self._seconds)
            return found(*args, **kwargs)

        return call


def folder_of(photos: int, where: Path) -> Path:
    sources = sorted(p for p in FACES.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    folder = where / "library"
    folder.mkdir()
    for n in range(photos):
        source = sources[n % len(sources)]
        shutil.copyfile(source, folder / f"{n:05d}-{source.name}")
    return folder


def with_latency(tps: float):
    svc = fake_services(index_on_upload=False)
    return replace(
        svc,
        settings=replace(svc.settings, index_tps=tps),
        photos=Delayed(svc.photos, S3_PUT_SECONDS),
        records=Delayed(svc.records, DYNAMODB_SECONDS),
    )


def with_moto(tps: float, stack):
    import pytest

    from tests.support.fake_rekognition import aws_stage

    monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
    stage = stack.enter_context(aws_stage(monkeypatch, "dev"))
    stage.events.held = True  # only the uploads: no worker indexes them
    from chalicelib import wiring
    from chalicelib.core.config import Settings

    svc = wiring.services(Settings.from_env(stage.env))
    return replace(svc, settings=replace(svc.settings, index_tps=tps))


def rate(svc, folder: Path, workers: int, where: Path) -> float:
    journal = where / f"journal-{workers}-{time.monotonic_ns()}.json"
    started = time.perf_counter()
    summary = importer.import_folder(svc, folder, journal, workers=workers)
    seconds = time.perf_counter() - started
    assert summary.uploaded == summary.photos, (summary.refused, summary.failed)
    return summary.uploaded / seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=600)
    args = parser.parse_args(argv)
    sized = importer.aws_uploads(50)
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        folder = folder_of(args.photos, where)
        print(f"{args.photos} photos of {FACES.name}/ ({sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.0f} MB)")
        for workers in (importer.AWS_UPLOADS, sized):
            got = rate(with_latency(50), folder, workers, where)
            print(
                f"  S3 PUT {S3_PUT_SECONDS * 1000:.0f} ms, DynamoDB {DYNAMODB_SECONDS * 1000:.0f} ms:"
                f" {workers} uploads at a time: {got:.0f} photos a second"
            )
        from contextlib import ExitStack

        for workers in (importer.AWS_UPLOADS, sized):
            with ExitStack() as stack:
                got = rate(with_moto(50, stack), folder, workers, where)
            print(f"  moto (boto3, the real adapters): {workers} uploads at a time: {got:.0f} photos a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
