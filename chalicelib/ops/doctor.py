"""`make doctor [STAGE=dev]`: what is in order for a stage, and what is not,
each with what to do. Never a traceback; exit status 0 when everything is in
order, 1 when something needs fixing.

For every stage: Python, the packages and the engine's models, the data folder
and its free space, the shared photos and the browser that `make test`
uses. For an AWS stage also: the stage's names in .chalice, credentials and
region, the bucket and its versioning, the tables (their `due` index,
point-in-time recovery), the Rekognition collection, any queue the stage
names, and the API key of docs/deploy.md step 5.

    python -m chalicelib.ops.doctor [--stage local] [--chromium /usr/bin/chromium]
"""

import argparse
import importlib
import os
import shutil
import sqlite3
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.embedded import private
from chalicelib.ops import aws_access, aws_setup

REPO = Path(__file__).resolve().parents[2]

PYTHON = (3, 13)
MIN_FREE_BYTES = 2 * 1024**3  # a photo library's worth of headroom; a million seeded faces take about 1.5 GB
CHROMIUM = "/usr/bin/chromium"
OK, FIX = "ok", "FIX"


@dataclass
class Finding:
    status: str  # OK or FIX
    what: str
    detail: str  # what is there, or what to do


def main(argv: list[str] | None = None, clients=aws_setup._boto3_clients, chalice_dir: Path = REPO / ".chalice") -> int:
    parser = argparse.ArgumentParser(prog="python -m chalicelib.ops.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="local", help="a stage of .chalice/config.json (local, dev, prod)")
    parser.add_argument("--chromium", default=CHROMIUM, help="the browser the console's tests drive")
    args = parser.parse_args(argv)
    print(f"Faceprint doctor, stage {args.stage!r}:")
    findings: list[Finding] = []

    def report(finding: Finding) -> None:
        findings.append(finding)
        print(f"  {finding.status:<4} {finding.what}: {finding.detail}", flush=True)

    try:
        environment = aws_setup.stage_environment(args.stage, chalice_dir)
    except ConfigurationError as e:
        report(Finding(FIX, "the stage", f"{e} Give STAGE=local, dev or prod."))
        return 1
    env = {**environment, **os.environ, "FACEPRINT_STAGE": args.stage}
    aws = environment.get("FACEPRINT_ENGINE", "local") == "rekognition"
    for check in (_python, _packages, _models if not aws else None):
        if check is not None:
            report(_guarded(check))
    report(_guarded(lambda: _data_folder(env)))
    report(_guarded(_test_photos))
    report(_guarded(lambda: _browser(args.chromium)))
    if aws:
        for finding in _aws(args.stage, environment, clients, chalice_dir):
            report(finding)
    to_fix = sum(finding.status == FIX for finding in findings)
    print(f"{len(findings) - to_fix} in order, {to_fix} to fix." + (" See the FIX lines above." if to_fix else ""))
    return 1 if to_fix else 0


def _guarded(check: Callable[[], Finding]) -> Finding:
    """A check that fails in a way it did not foresee still says so in one line."""
    try:
        return check()
    except Exception as e:  # noqa: BLE001 - reported, never a traceback
        return Finding(FIX, getattr(check, "__name__", "a check").strip("_"), f"{type(e).__name__}: {e}")


def _python() -> Finding:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] != PYTHON:
        return Finding(
            FIX,
            "Python",
            f"{version} runs this; Faceprint needs {PYTHON[0]}.{PYTHON[1]} (Lambda's python3.13): "
            "`make clean` then `make PYTHON=/path/to/python3.13 doctor`.",
        )
    return Finding(OK, "Python", f"{version} in {sys.prefix}")


def _packages() -> Finding:
    missing = []
    for module in ("chalice", "boto3", "PIL", "pillow_heif", "numpy", "faiss", "dlib", "onnxruntime", "onnx"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        return Finding(
            FIX,
            "packages",
            f"{', '.join(missing)} cannot be imported: `rm .venv/.installed-stamp && make doctor` installs "
            "requirements-dev.txt again.",
        )
    import chalice

    return Finding(OK, "packages", f"chalice {chalice.__version__} and the rest of requirements-dev.txt")


def _models() -> Finding:
    from chalicelib.embedded import analysis, model_files

    try:
        analysis.load_models()
    except model_files.ModelMissing as e:
        return Finding(FIX, "the engine's models", str(e))
    import dlib

    return Finding(
        OK,
        "the engine's models",
        f"YuNet, dlib {dlib.__version__}'s 5-point landmarks and its ResNet descriptor (run by onnxruntime) load",
    )


def _data_folder(env: dict[str, str]) -> Finding:
    folder = Settings.from_env({**env, "FACEPRINT_ENGINE": "local"}).data_dir
    blocked = private.file_in_the_way(folder)
    if blocked:
        return Finding(FIX, "data folder", blocked)
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        return Finding(FIX, "data folder", f"{existing} is not writable: set FACEPRINT_DATA_DIR to a folder you own.")
    free = shutil.disk_usage(existing).free
    held = _archive(folder)
    if free < MIN_FREE_BYTES:
        return Finding(
            FIX,
            "data folder",
            f"{folder}: only {free / 1e9:.1f} GB free ({held}); free some space, "
            "or FACEPRINT_DATA_DIR=/a/roomier/disk.",
        )
    return Finding(OK, "data folder", f"{folder}: {free / 1e9:,.0f} GB free; {held}")


def _archive(folder: Path) -> str:
    database = folder / "faceprint.db"
    if not database.is_file():
        return "no archive yet (the first upload makes one)"
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as conn:
            images = conn.execute("SELECT count(*) FROM images").fetchone()[0]
    except sqlite3.Error as e:
        return f"an archive that SQLite cannot read ({e}): `make restore` a backup into another folder"
    return f"an archive of {images:,} images ({database.stat().st_size / 1e6:,.0f} MB of database)"


def _test_photos() -> Finding:
    """make test runs on the photos that ship in tests/faces; the shared set,
    when present, adds the tests that need more people (they skip without it)."""
    faces = Path(os.environ.get("FACEPRINT_FACES_DIR") or REPO.parent / "shared" / "faces")
    shipped = REPO / "tests" / "faces"
    if not (shipped / "people.json").is_file():
        return Finding(FIX, "test photos", f"{shipped}/people.json is missing: `git checkout tests/faces`.")
    if not (faces / "people.json").is_file():
        return Finding(
            OK,
            "test photos",
            f"{shipped} (for make test); the tests that need more people skip: put the shared "
            "faces/ folder at ../shared/faces (or FACEPRINT_FACES_DIR=/path/to/faces) to run them too",
        )
    return Finding(OK, "test photos", f"{shipped} and {faces} (for make test)")


def _browser(chromium: str) -> Finding:
    if not os.access(chromium, os.X_OK):
        return Finding(
            FIX,
            "browser",
            f"{chromium} is missing, which the console's tests drive: `apt-get install -y chromium` "
            "(make test installs it itself when run as root).",
        )
    return Finding(OK, "browser", f"{chromium} (for the console's tests)")


def _aws(stage: str, environment: dict[str, str], clients, chalice_dir: Path) -> list[Finding]:
    found: list[Finding] = []
    try:
        settings = aws_setup.stage_settings(environment)
        aws_setup.check_policy(settings, chalice_dir)
        found.append(Finding(OK, "stage names", f"bucket {settings.bucket}, in config.json and policy-{stage}*.json"))
    except ConfigurationError as e:
        found.append(Finding(FIX, "stage names", str(e)))
        settings = Settings.from_env({**environment, "FACEPRINT_STAGE": stage})
    region = None
    try:
        region, client = clients()
        if not region:
            found.append(Finding(FIX, "region", f"none is set. {aws_access.REGION_HELP}"))
            return found
        identity = client("sts").get_caller_identity()
        found.append(Finding(OK, "credentials", f"account {identity['Account']}, as {identity['Arn']}"))
    except (BotoCoreError, ClientError) as e:
        found.append(Finding(FIX, "credentials", aws_access.aws_problem(e, region)))
        return found
    offered = _rekognition_regions()
    found.append(
        Finding(OK, "region", region)
        if not offered or region in offered
        else Finding(FIX, "region", f"Rekognition is not offered in {region}: use one of {', '.join(sorted(offered))}.")
    )
    setup = f"`make aws-setup STAGE={stage}`"
    for check in (_bucket, _tables, _collection, _queues, _api_key):
        try:
            found += check(settings, environment, client, setup)
        except (BotoCoreError, ClientError) as e:
            found.append(Finding(FIX, check.__name__.strip("_"), aws_access.aws_problem(e, region)))
    return found


def _rekognition_regions() -> set[str]:
    import boto3

    return set(boto3.session.Session().get_available_regions("rekognition"))


def _bucket(settings: Settings, environment, client, setup: str) -> list[Finding]:
    s3 = client("s3")
    try:
        s3.head_bucket(Bucket=settings.bucket)
    except ClientError as e:
        if aws_setup._code(e) in ("404", "NoSuchBucket"):
            return [Finding(FIX, "bucket", f"{settings.bucket} does not exist: {setup} creates it.")]
        if aws_setup._code(e) == "403":
            return [Finding(FIX, "bucket", f"{settings.bucket} belongs to another account: choose another name.")]
        raise
    versioning = s3.get_bucket_versioning(Bucket=settings.bucket).get("Status", "never enabled")
    if versioning != "Enabled":
        return [Finding(FIX, "bucket", f"{settings.bucket} exists, versioning {versioning}: {setup} enables it.")]
    return [Finding(OK, "bucket", f"{settings.bucket}, versioned")]


def _tables(settings: Settings, environment, client, setup: str) -> list[Finding]:
    dynamodb = client("dynamodb")
    found = []
    for table in (settings.images_table, settings.faces_table, settings.people_table):
        try:
            described = dynamodb.describe_table(TableName=table)["Table"]
        except ClientError as e:
            if aws_setup._code(e) != "ResourceNotFoundException":
                raise
            found.append(Finding(FIX, f"table {table}", f"does not exist: {setup} creates it."))
            continue
        problems = []
        if described["TableStatus"] != "ACTIVE":
            problems.append(f"it is {described['TableStatus']} (wait, then run this again)")
        if table == settings.images_table:
            indexes = {i["IndexName"]: i["IndexStatus"] for i in described.get("GlobalSecondaryIndexes", [])}
            if indexes.get(aws_setup.DUE_INDEX) != "ACTIVE":
                problems.append(f"its `due` index is {indexes.get(aws_setup.DUE_INDEX, 'missing')}")
        backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        recovery = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED")
        if recovery != "ENABLED":
            problems.append(f"point-in-time recovery is {recovery}")
        found.append(
            Finding(FIX, f"table {table}", "; ".join(problems) + f": {setup} sets it up.")
            if problems
            else Finding(OK, f"table {table}", f"{described.get('ItemCount', 0):,} items, point-in-time recovery on")
        )
    return found


def _collection(settings: Settings, environment, client, setup: str) -> list[Finding]:
    try:
        described = client("rekognition").describe_collection(CollectionId=settings.collection)
    except ClientError as e:
        if aws_setup._code(e) != "ResourceNotFoundException":
            raise
        return [
            Finding(
                FIX,
                "collection",
                f"{settings.collection} does not exist: {setup} creates it; if the stage held faces, "
                f"`make reindex STAGE={settings.stage}` then indexes its photos again (people kept).",
            )
        ]
    return [Finding(OK, "collection", f"{settings.collection}, {described.get('FaceCount', 0):,} faces")]


def _queues(settings: Settings, environment, client, setup: str) -> list[Finding]:
    """Any queue the stage names (a FACEPRINT_*QUEUE* variable)."""
    found = []
    for variable, name in sorted(environment.items()):
        if not (variable.startswith("FACEPRINT_") and "QUEUE" in variable) or not name:
            continue
        queue = name.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        try:
            client("sqs").get_queue_url(QueueName=queue)
        except ClientError as e:
            if "NonExistentQueue" not in aws_setup._code(e):
                raise
            found.append(Finding(FIX, f"queue {queue}", f"does not exist ({variable}): {setup} creates it."))
            continue
        found.append(Finding(OK, f"queue {queue}", f"exists ({variable})"))
    return found


def _api_key(settings: Settings, environment, client, setup: str) -> list[Finding]:
    name = f"faceprint-{settings.stage}"
    keys = client("apigateway").get_api_keys(nameQuery=name, limit=50).get("items", [])
    if not keys:
        return [
            Finding(
                FIX,
                "API key",
                f"no API Gateway key named {name}*: after `chalice deploy`, create it and its usage plan "
                "(docs/deploy.md, step 5).",
            )
        ]
    enabled = [key for key in keys if key.get("enabled")]
    if not enabled:
        return [Finding(FIX, "API key", f"{keys[0]['name']} is disabled: enable it in API Gateway.")]
    return [Finding(OK, "API key", f"{enabled[0]['name']}, enabled")]


if __name__ == "__main__":
    sys.exit(main())
