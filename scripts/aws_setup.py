"""Create or tear down what a Faceprint AWS stage needs and Chalice does not
create: the private photo bucket, the two DynamoDB tables and the
Rekognition collection. Idempotent: run it again and it only reports what
already exists.

    python scripts/aws_setup.py create --stage dev      (make aws-setup STAGE=dev)
    python scripts/aws_setup.py teardown --stage dev    (make aws-teardown STAGE=dev)

The names come from the stage's environment_variables in
.chalice/config.json, the same ones the deployed app reads; the stage's
policy file must name the same resources, which `create` checks first.
The bucket's ObjectCreated notification is left to `chalice deploy`
(app.py's @app.on_s3_event). Region and credentials: boto3's usual chain
(AWS_PROFILE, AWS_DEFAULT_REGION, ...), which must match where you deploy."""

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from botocore.exceptions import ClientError  # noqa: E402

from chalicelib.core.config import Settings  # noqa: E402
from chalicelib.core.errors import ConfigurationError  # noqa: E402

PLACEHOLDER = "change-me"
Log = Callable[[str], None]


def stage_environment(stage: str, chalice_dir: Path = REPO / ".chalice") -> dict[str, str]:
    config = json.loads((chalice_dir / "config.json").read_text())
    if stage not in config.get("stages", {}):
        raise ConfigurationError(f"No stage {stage!r} in {chalice_dir / 'config.json'}.")
    return {**config.get("environment_variables", {}), **config["stages"][stage].get("environment_variables", {})}


def stage_settings(env: dict[str, str]) -> Settings:
    settings = Settings.from_env(env)
    if settings.engine != "rekognition":
        raise ConfigurationError(
            f"Stage {settings.stage!r} uses the {settings.engine} engine: nothing to set up on AWS."
        )
    return settings


def check_policy(settings: Settings, chalice_dir: Path = REPO / ".chalice") -> None:
    """The policy file must grant access to the very resources we create."""
    if settings.bucket.endswith(PLACEHOLDER):
        raise ConfigurationError(
            f"Bucket names are global: replace {settings.bucket!r} with a name of your own in "
            f".chalice/config.json (FACEPRINT_BUCKET) and .chalice/policy-{settings.stage}.json."
        )
    policy = (chalice_dir / f"policy-{settings.stage}.json").read_text()
    expected = {
        "bucket": f"arn:aws:s3:::{settings.bucket}",
        "images table": f":table/{settings.images_table}",
        "faces table": f":table/{settings.faces_table}",
        "collection": f":collection/{settings.collection}",
    }
    missing = [
        f"{what} ({arn})" for what, arn in expected.items() if f'{arn}"' not in policy and f"{arn}/" not in policy
    ]
    if missing:
        raise ConfigurationError(
            f".chalice/policy-{settings.stage}.json does not name the stage's {', '.join(missing)}: "
            "make it agree with .chalice/config.json."
        )


def create_stage(settings: Settings, s3, dynamodb, rekognition, log: Log = print) -> None:
    _create_bucket(s3, settings.bucket, settings.region, log)
    for table, key in ((settings.images_table, "key"), (settings.faces_table, "FaceId")):
        _create_table(dynamodb, table, key, log)
    for table in (settings.images_table, settings.faces_table):
        dynamodb.get_waiter("table_exists").wait(TableName=table)
    try:
        rekognition.create_collection(CollectionId=settings.collection)
        log(f"created Rekognition collection {settings.collection}")
    except ClientError as e:
        if _code(e) != "ResourceAlreadyExistsException":
            raise
        log(f"Rekognition collection {settings.collection} already exists")


def teardown_stage(settings: Settings, s3, dynamodb, rekognition, log: Log = print) -> None:
    try:
        rekognition.delete_collection(CollectionId=settings.collection)
        log(f"deleted Rekognition collection {settings.collection}")
    except ClientError as e:
        if _code(e) != "ResourceNotFoundException":
            raise
    for table in (settings.images_table, settings.faces_table):
        try:
            dynamodb.delete_table(TableName=table)
            log(f"deleting DynamoDB table {table}")
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
    _delete_bucket(s3, settings.bucket, log)


def _create_bucket(s3, bucket: str, region: str | None, log: Log) -> None:
    # HeadBucket first: us-east-1 answers a repeated CreateBucket with 200.
    try:
        s3.head_bucket(Bucket=bucket)
        log(f"S3 bucket {bucket} already exists")
    except ClientError as e:
        if _code(e) == "403":
            raise ConfigurationError(
                f"The bucket name {bucket!r} belongs to another AWS account: choose another in "
                ".chalice/config.json (FACEPRINT_BUCKET) and the stage's policy file."
            ) from e
        if _code(e) not in ("404", "NoSuchBucket"):
            raise
        request = {"Bucket": bucket}
        if region and region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        s3.create_bucket(**request)
        log(f"created S3 bucket {bucket}")
    # Private, whatever the account's defaults: no public access, objects
    # owned by the bucket owner, encrypted at rest.
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_ownership_controls(
        Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    )
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
        },
    )


def _create_table(dynamodb, table: str, key: str, log: Log) -> None:
    try:
        dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        log(f"created DynamoDB table {table} (on-demand, key {key})")
    except ClientError as e:
        if _code(e) != "ResourceInUseException":
            raise
        log(f"DynamoDB table {table} already exists")


def _delete_bucket(s3, bucket: str, log: Log) -> None:
    try:
        paginator = s3.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            if doomed:
                s3.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
        s3.delete_bucket(Bucket=bucket)
        log(f"deleted S3 bucket {bucket} and its photos")
    except ClientError as e:
        if _code(e) != "NoSuchBucket":
            raise


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("create", "teardown"))
    parser.add_argument("--stage", required=True)
    parser.add_argument("--yes", action="store_true", help="teardown without asking")
    args = parser.parse_args(argv)
    try:
        settings = stage_settings(stage_environment(args.stage))
        if args.action == "create":
            check_policy(settings)
    except ConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import boto3

    session = boto3.session.Session()
    settings = Settings.from_env({**stage_environment(args.stage), "AWS_REGION": session.region_name or ""})
    s3, dynamodb, rekognition = (session.client(name) for name in ("s3", "dynamodb", "rekognition"))
    if args.action == "create":
        create_stage(settings, s3, dynamodb, rekognition)
        return 0
    if not args.yes:
        answer = input(f"Delete every photo, record and face of stage {args.stage!r}? Type the stage name: ")
        if answer.strip() != args.stage:
            print("Nothing deleted.")
            return 1
    teardown_stage(settings, s3, dynamodb, rekognition)
    return 0


if __name__ == "__main__":
    sys.exit(main())
