"""Create or tear down what a Faceprint AWS stage needs and Chalice does not
create: the private, versioned, TLS-only photo bucket, the three DynamoDB tables (the
images table with its `due` index, the faces table, the people table),
the Rekognition collection, the indexing queue (the bucket's events go to
it) with its dead-letter queue, the CloudWatch alarms on them, the log
groups with their retention (the functions' and the audit log's), the API's
usage plan and its read, write and admin keys (once `chalice deploy` has
made the API) and,
when the stage has a custom domain and you name its Route53 hosted zone,
the domain's DNS record. Idempotent: run it again and it only reports what
already exists.

    python -m chalicelib.ops.aws_setup create --stage dev [--hosted-zone Z123]
        (make aws-setup STAGE=dev [HOSTED_ZONE=Z123])
    python -m chalicelib.ops.aws_setup teardown --stage dev [--yes]
        (make aws-teardown STAGE=dev [YES=1])

The names come from the stage's environment_variables in
.chalice/config.json, the same ones the deployed app reads; the stage's
policy file must name the same resources, which `create` checks first.
The indexing workers' event source on the queue, the schedule of the
re-drive and the API Gateway custom domain itself are left to `chalice
deploy`. Region
and credentials: boto3's usual chain (AWS_PROFILE, AWS_DEFAULT_REGION, ...),
which must match where you deploy."""

import argparse
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, NoRegionError

from chalicelib.api.scopes import SCOPE_HELP, SCOPE_TAG, SCOPES
from chalicelib.aws.dynamodb import DUE_INDEX, DUE_SHARD, PENDING_INDEX, PENDING_SINCE, due_shard
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.index_queue import COLLECTION_NEARLY_FULL, MAX_RECEIVES, REDRIVE_EVERY_SECONDS
from chalicelib.core.logs import METRICS_NAMESPACE
from chalicelib.ops.aws_access import aws_problem

REPO = Path(__file__).resolve().parents[2]

PLACEHOLDER = "change-me"
Log = Callable[[str], None]

# The sparse index through which the re-drive finds the records it owes a
# visit, the longest due first: only they carry DUE_SHARD and PENDING_SINCE
# (when they are due), so only they are in it. It replaces the older
# `pending` index (keyed by the time alone, so read whole), which a stage
# made before it is migrated from (migrate_due_index).
DUE_INDEX_DEFINITION = {
    "IndexName": DUE_INDEX,
    "KeySchema": [
        {"AttributeName": DUE_SHARD, "KeyType": "HASH"},
        {"AttributeName": PENDING_SINCE, "KeyType": "RANGE"},
    ],
    "Projection": {"ProjectionType": "KEYS_ONLY"},
}
INDEX_WAIT_SECONDS = 30 * 60  # a new index on a large table backfills first

# Each indexing run works on one photo version; a replaced photo's old
# versions go a day later, and so do leftovers of deletes and uploads.
LIFECYCLE_RULE = {
    "ID": "faceprint-old-versions",
    "Status": "Enabled",
    "Filter": {"Prefix": ""},
    "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
    "Expiration": {"ExpiredObjectDeleteMarker": True},
    "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
}
# The console follows the API's 307 to a presigned URL with fetch(), which
# keeps its x-api-key header: the browser asks S3 first (a preflight). The
# presigned URL is the authorisation; the bucket stays private.
CORS_RULE = {
    "ID": "faceprint-presigned-downloads",
    "AllowedMethods": ["GET", "HEAD"],
    "AllowedOrigins": ["*"],
    "AllowedHeaders": ["*"],
    "MaxAgeSeconds": 3600,
}

# The bucket answers only requests made over TLS, whoever makes them (a
# presigned link included): a Deny on every action when aws:SecureTransport
# is false. (A Deny grants nothing, so BlockPublicPolicy lets it in.)
TLS_ONLY_SID = "faceprint-tls-only"


def tls_only_statement(bucket: str) -> dict:
    return {
        "Sid": TLS_ONLY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


# The indexing queue (docs/deploy.md, "Indexing at volume"). Messages are
# kept as long as SQS allows, so a backlog of days loses nothing. AWS asks
# for a visibility timeout of at least six times the function's timeout, so
# that a batch Lambda could not start at once is not received twice.
WORKER_FUNCTION = "index_queued_photos"
QUEUE_RETENTION_SECONDS = 14 * 24 * 3600
VISIBILITY_PER_TIMEOUT = 6
NOTIFICATION_ID = "faceprint-index-queue"
BUCKET_EVENTS = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
# Before the queue, `chalice deploy` pointed the bucket at this function.
OLD_S3_HANDLER = "index_stored_photo"
# The API's usage plan: every route at most API_RATE requests a second per
# key; the routes that call a Rekognition search at the stage's
# FACEPRINT_SEARCH_TPS, so a client gets API Gateway's 429 before
# Rekognition throttles; a monthly quota a steady load at those rates
# cannot exhaust. API Gateway throttles each method on its own (POST and
# PUT /search would let twice the rate through), and `faces=all` makes a
# SearchFacesByImage a face: the stage's one search budget (core/pacing.py)
# keeps SearchFacesByImage to FACEPRINT_SEARCH_TPS whatever the route, the
# method or the faces, and answers 429 beyond it.
API_RATE, API_BURST = 50, 100
SEARCH_ROUTES = (
    ("/search", "POST"),
    ("/search", "PUT"),
    ("/search/people", "POST"),
    ("/search/people", "PUT"),
    ("/faces/{face_id}/matches", "GET"),
    ("/compare", "POST"),
    ("/people/suggestions", "POST"),
)
MONTH_SECONDS = 31 * 24 * 3600

# What the guide's custom domain snippet says until it is made yours.
EXAMPLE_DOMAINS = ("example.com", "example.org", "example.net")


@dataclass(frozen=True)
class CustomDomain:
    """A stage's `api_gateway_custom_domain` (Chalice creates the API
    Gateway domain name and base path mapping on `chalice deploy`)."""

    name: str
    certificate_arn: str
    endpoint_type: str = "EDGE"  # Chalice's api_gateway_endpoint_type


def _stage_config(stage: str, chalice_dir: Path) -> tuple[dict, dict]:
    config = json.loads((chalice_dir / "config.json").read_text())
    if stage not in config.get("stages", {}):
        raise ConfigurationError(f"No stage {stage!r} in {chalice_dir / 'config.json'}.")
    return config, config["stages"][stage]


def stage_environment(stage: str, chalice_dir: Path = REPO / ".chalice") -> dict[str, str]:
    config, stage_config = _stage_config(stage, chalice_dir)
    return {**config.get("environment_variables", {}), **stage_config.get("environment_variables", {})}


def stage_custom_domain(stage: str, chalice_dir: Path = REPO / ".chalice") -> CustomDomain | None:
    """The stage's custom domain as Chalice reads it (the stage's setting,
    else the top-level one), or None."""
    config, stage_config = _stage_config(stage, chalice_dir)
    domain = stage_config.get("api_gateway_custom_domain", config.get("api_gateway_custom_domain"))
    if not domain:
        return None
    missing = [name for name in ("domain_name", "certificate_arn") if not str(domain.get(name, "")).strip()]
    if missing:
        raise ConfigurationError(
            f"Stage {stage!r}'s api_gateway_custom_domain lacks {' and '.join(missing)} (.chalice/config.json)."
        )
    endpoint_type = stage_config.get("api_gateway_endpoint_type", config.get("api_gateway_endpoint_type", "EDGE"))
    return CustomDomain(
        domain["domain_name"].strip().lower().rstrip("."), domain["certificate_arn"].strip(), endpoint_type
    )


def stage_settings(env: dict[str, str]) -> Settings:
    settings = Settings.from_env(env)
    if settings.engine != "rekognition":
        raise ConfigurationError(
            f"Stage {settings.stage!r} uses the {settings.engine} engine: nothing to set up on AWS."
        )
    return settings


def policy_files(stage: str, chalice_dir: Path = REPO / ".chalice") -> list[str]:
    """The stage's policy files: the API's (the stage's own), then each
    function's role's (its lambda_functions' iam_policy_file)."""
    _, stage_config = _stage_config(stage, chalice_dir)
    files = [stage_config.get("iam_policy_file", f"policy-{stage}.json")]
    for function in stage_config.get("lambda_functions", {}).values():
        if function.get("iam_policy_file") and function["iam_policy_file"] not in files:
            files.append(function["iam_policy_file"])
    return files


def check_policy(settings: Settings, chalice_dir: Path = REPO / ".chalice") -> None:
    """The policy files must grant access to the very resources we create:
    the API's names them all, and no function's names another bucket."""
    if settings.bucket.endswith(PLACEHOLDER):
        raise ConfigurationError(
            f"Bucket names are global: replace {settings.bucket!r} with a name of your own in "
            f".chalice/config.json (FACEPRINT_BUCKET) and .chalice/policy-{settings.stage}*.json."
        )
    files = policy_files(settings.stage, chalice_dir)
    policy = (chalice_dir / files[0]).read_text()
    expected = {
        "bucket": f"arn:aws:s3:::{settings.bucket}",
        "images table": f":table/{settings.images_table}",
        "faces table": f":table/{settings.faces_table}",
        "people table": f":table/{settings.people_table}",
        "collection": f":collection/{settings.collection}",
        "indexing queue": f":{settings.index_queue}",
    }
    missing = [
        f"{what} ({arn})" for what, arn in expected.items() if f'{arn}"' not in policy and f"{arn}/" not in policy
    ]
    if missing:
        raise ConfigurationError(
            f".chalice/{files[0]} does not name the stage's {', '.join(missing)}: "
            "make it agree with .chalice/config.json."
        )
    other = [
        name
        for name in files
        if re.search(rf'arn:aws:s3:::(?!{re.escape(settings.bucket)}["/])', (chalice_dir / name).read_text())
    ]
    if other:
        raise ConfigurationError(
            f"{', '.join(f'.chalice/{name}' for name in other)} name{'s' if len(other) == 1 else ''} another bucket "
            f"than the stage's {settings.bucket!r}: make {'it' if len(other) == 1 else 'them'} agree with "
            ".chalice/config.json."
        )


def check_custom_domain(domain: CustomDomain, stage: str, region: str | None = None) -> None:
    """Refuse the guide's placeholders and a certificate API Gateway would
    refuse, before `chalice deploy` gets halfway and fails."""
    where = f"the {stage!r} stage's api_gateway_custom_domain in .chalice/config.json"
    if PLACEHOLDER in domain.name or any(
        domain.name == example or domain.name.endswith("." + example) for example in EXAMPLE_DOMAINS
    ):
        raise ConfigurationError(f"Replace the example domain_name {domain.name!r} with your own domain in {where}.")
    if PLACEHOLDER in domain.certificate_arn:
        raise ConfigurationError(
            f"Replace the example certificate_arn in {where} with the ARN of your ACM certificate for {domain.name}."
        )
    parts = domain.certificate_arn.split(":")
    if len(parts) < 6 or parts[:3] != ["arn", "aws", "acm"] or not parts[5].startswith("certificate/"):
        raise ConfigurationError(
            f"certificate_arn {domain.certificate_arn!r} in {where} is not an ACM certificate ARN "
            "(arn:aws:acm:<region>:<account>:certificate/<id>)."
        )
    if domain.endpoint_type not in ("EDGE", "REGIONAL"):
        raise ConfigurationError(
            f"A custom domain needs api_gateway_endpoint_type EDGE or REGIONAL, not {domain.endpoint_type!r}."
        )
    certificate_region = parts[3]
    if domain.endpoint_type == "EDGE" and certificate_region != "us-east-1":
        raise ConfigurationError(
            f"An edge-optimized API (Chalice's default) needs its certificate in us-east-1, and {where} names one "
            f"in {certificate_region}: request the certificate in us-east-1, or set api_gateway_endpoint_type "
            "to REGIONAL and use a certificate in the API's region."
        )
    if domain.endpoint_type == "REGIONAL" and region and certificate_region != region:
        raise ConfigurationError(
            f"A regional API needs its certificate in its own region ({region}); {where} names one "
            f"in {certificate_region}."
        )


def create_stage(
    settings: Settings,
    s3,
    dynamodb,
    rekognition,
    log: Log = print,
    sleep=time.sleep,
    *,
    sqs,
    cloudwatch,
    apigateway,
    logs=None,
    chalice_dir: Path = REPO / ".chalice",
) -> None:
    _create_bucket(s3, settings.bucket, settings.region, log)
    create_tables(dynamodb, settings, log, sleep)
    try:
        rekognition.create_collection(CollectionId=settings.collection)
        log(f"created Rekognition collection {settings.collection}")
    except ClientError as e:
        if _code(e) != "ResourceAlreadyExistsException":
            raise
        log(f"Rekognition collection {settings.collection} already exists")
    create_index_queue(settings, sqs, s3, log, worker_timeout(settings.stage, chalice_dir))
    create_alarms(settings, cloudwatch, log)
    create_usage_plan(settings, apigateway, log, chalice_dir)
    if logs is not None:
        create_log_groups(settings, logs, log, chalice_dir)


def create_tables(dynamodb, settings: Settings, log: Log = print, sleep=time.sleep) -> None:
    """The images table (with the `due` index, added to a table made before
    it existed), the faces table and the people table, all on-demand and
    ACTIVE."""
    _create_table(dynamodb, settings.images_table, "key", log, indexes=(DUE_INDEX_DEFINITION,))
    _create_table(dynamodb, settings.faces_table, "FaceId", log)
    _create_table(dynamodb, settings.people_table, "personId", log)
    for table in (settings.images_table, settings.faces_table, settings.people_table):
        dynamodb.get_waiter("table_exists").wait(TableName=table)
        enable_point_in_time_recovery(dynamodb, table, log)
    migrate_due_index(dynamodb, settings.images_table, log, sleep)


def migrate_due_index(dynamodb, table: str, log: Log = print, sleep=time.sleep) -> None:
    """A table made before the `due` index: its due records get their shard
    (read through the older `pending` index, which holds only them), the
    `due` index is added (DynamoDB fills it from the items), and once it is
    ACTIVE the older index goes. Run again after an interruption, it
    carries on."""
    indexes = {
        i["IndexName"] for i in dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
    }
    if PENDING_INDEX in indexes:
        marked = 0
        request = {
            "TableName": table,
            "IndexName": PENDING_INDEX,
            "ProjectionExpression": "#key",
            "ExpressionAttributeNames": {"#key": "key"},
        }
        for page in dynamodb.get_paginator("scan").paginate(**request):
            for item in page.get("Items", []):
                marked += _give_shard(dynamodb, table, item["key"]["S"])
        if marked:
            log(f"gave {marked} due record(s) of DynamoDB table {table} their shard of the {DUE_INDEX} index")
    _add_index(dynamodb, table, DUE_INDEX_DEFINITION, log)
    _wait_for_index(dynamodb, table, DUE_INDEX, log, sleep)
    if PENDING_INDEX in indexes:
        dynamodb.update_table(TableName=table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": PENDING_INDEX}}])
        log(f"removing the older index {PENDING_INDEX} of DynamoDB table {table}")


def _give_shard(dynamodb, table: str, key: str) -> bool:
    """The record's shard of the `due` index, if it is still due."""
    try:
        dynamodb.update_item(
            TableName=table,
            Key={"key": {"S": key}},
            UpdateExpression="SET #shard = :shard",
            ConditionExpression="attribute_exists(#pending)",
            ExpressionAttributeNames={"#shard": DUE_SHARD, "#pending": PENDING_SINCE},
            ExpressionAttributeValues={":shard": {"S": due_shard(key)}},
        )
    except ClientError as e:
        if _code(e) != "ConditionalCheckFailedException":
            raise
        return False
    return True


def enable_point_in_time_recovery(dynamodb, table: str, log: Log = print) -> None:
    """DynamoDB's continuous backups: any second of the last 35 days can be
    restored into a new table (docs/deploy.md, "Backups and restores")."""
    described = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    if described.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus") == "ENABLED":
        return
    dynamodb.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
    )
    log(f"enabled point-in-time recovery on DynamoDB table {table}")


def teardown_stage(
    settings: Settings, s3, dynamodb, rekognition, log: Log = print, *, sqs, cloudwatch, apigateway, logs=None
) -> None:
    if logs is not None:
        remove_audit_log(settings, logs, log)
    remove_usage_plan(settings, apigateway, log)
    remove_alarms(settings, cloudwatch, log)
    remove_index_queue(settings, sqs, s3, log)
    try:
        rekognition.delete_collection(CollectionId=settings.collection)
        log(f"deleted Rekognition collection {settings.collection}")
    except ClientError as e:
        if _code(e) != "ResourceNotFoundException":
            raise
    for table in (settings.images_table, settings.faces_table, settings.people_table):
        try:
            dynamodb.delete_table(TableName=table)
            log(f"deleting DynamoDB table {table}")
        except ClientError as e:
            if _code(e) != "ResourceNotFoundException":
                raise
    _delete_bucket(s3, settings.bucket, log)


# The logs (docs/privacy.md): every function's log group and the audit log
# group, each with its retention. Lambda makes a function's group at its
# first line, without one: made here first, or given one if it exists.


def log_groups(settings: Settings, chalice_dir: Path = REPO / ".chalice") -> dict[str, int]:
    """Each log group of the stage and its retention in days: the API's
    function (`<app>-<stage>`), each other function (`<app>-<stage>-<name>`),
    and the audit log."""
    config, stage_config = _stage_config(settings.stage, chalice_dir)
    prefix = f"/aws/lambda/{config['app_name']}-{settings.stage}"
    functions = [prefix, *(f"{prefix}-{name}" for name in stage_config.get("lambda_functions", {}))]
    return {
        **dict.fromkeys(functions, settings.log_retention_days),
        settings.audit_log_group: settings.audit_retention_days,
    }


def create_log_groups(settings: Settings, logs, log: Log = print, chalice_dir: Path = REPO / ".chalice") -> None:
    for group, days in log_groups(settings, chalice_dir).items():
        try:
            logs.create_log_group(logGroupName=group)
            log(f"created log group {group}")
        except ClientError as e:
            if _code(e) != "ResourceAlreadyExistsException":
                raise
        logs.put_retention_policy(logGroupName=group, retentionInDays=days)
        log(f"log group {group} keeps its lines {days} days")


def remove_audit_log(settings: Settings, logs, log: Log = print) -> None:
    try:
        logs.delete_log_group(logGroupName=settings.audit_log_group)
        log(f"deleted log group {settings.audit_log_group}")
    except ClientError as e:
        if _code(e) != "ResourceNotFoundException":
            raise


# The indexing queue, its dead-letter queue and the bucket's notification.


def dead_letter_queue(settings: Settings) -> str:
    return f"{settings.index_queue}-dead"


def worker_timeout(stage: str, chalice_dir: Path = REPO / ".chalice") -> int:
    """The indexing workers' Lambda timeout, as Chalice reads it (the
    function's setting, else the stage's, else the top level's; 60 s)."""
    config, stage_config = _stage_config(stage, chalice_dir)
    function = stage_config.get("lambda_functions", {}).get(WORKER_FUNCTION, {})
    return int(function.get("lambda_timeout", stage_config.get("lambda_timeout", config.get("lambda_timeout", 60))))


def create_index_queue(settings: Settings, sqs, s3, log: Log = print, timeout: int = 120) -> None:
    """The queue and its dead-letter queue (a message goes there at its
    receive after MAX_RECEIVES), S3 allowed to send to it, and the bucket's
    ObjectCreated and ObjectRemoved events sent there."""
    dead_url = _create_queue(
        sqs, dead_letter_queue(settings), {"MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS)}, log
    )
    dead_arn = _queue_arn(sqs, dead_url)
    url = _create_queue(sqs, settings.index_queue, {}, log)
    arn = _queue_arn(sqs, url)
    account = arn.split(":")[4]
    bucket_arn = f"arn:aws:s3:::{settings.bucket}"
    attributes = {
        "MessageRetentionPeriod": str(QUEUE_RETENTION_SECONDS),
        "VisibilityTimeout": str(VISIBILITY_PER_TIMEOUT * timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": MAX_RECEIVES}),
        "Policy": json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "faceprint-bucket-events",
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arn,
                        "Condition": {
                            "ArnEquals": {"aws:SourceArn": bucket_arn},
                            "StringEquals": {"aws:SourceAccount": account},
                        },
                    }
                ],
            }
        ),
    }
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    _notify_queue(s3, settings, arn, log)


def remove_index_queue(settings: Settings, sqs, s3, log: Log = print) -> None:
    try:
        current = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
        current.pop("ResponseMetadata", None)
        queues = [c for c in current.get("QueueConfigurations", []) if c.get("Id") != NOTIFICATION_ID]
        if len(queues) != len(current.get("QueueConfigurations", [])):
            s3.put_bucket_notification_configuration(
                Bucket=settings.bucket, NotificationConfiguration={**current, "QueueConfigurations": queues}
            )
    except ClientError as e:
        if _code(e) != "NoSuchBucket":
            raise
    for name in (settings.index_queue, dead_letter_queue(settings)):
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as e:
            if _code(e) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                raise
            continue
        sqs.delete_queue(QueueUrl=url)
        log(f"deleted SQS queue {name}")


def _create_queue(sqs, name: str, attributes: dict, log: Log) -> str:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as e:
        if _code(e) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        log(f"created SQS queue {name}")
        return url
    if attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    log(f"SQS queue {name} already exists")
    return url


def _queue_arn(sqs, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _notify_queue(s3, settings: Settings, queue_arn: str, log: Log) -> None:
    """The bucket's events to the queue, keeping the bucket's other
    notifications, but not the S3 handler `chalice deploy` connected before
    the queue existed (its events would overlap ours, which S3 refuses; the
    next `chalice deploy` removes the function itself)."""
    current = s3.get_bucket_notification_configuration(Bucket=settings.bucket)
    current.pop("ResponseMetadata", None)
    ours = {"Id": NOTIFICATION_ID, "QueueArn": queue_arn, "Events": BUCKET_EVENTS}
    queues = current.get("QueueConfigurations", [])
    if any(
        c.get("Id") == NOTIFICATION_ID and c["QueueArn"] == queue_arn and sorted(c["Events"]) == BUCKET_EVENTS
        for c in queues
    ):
        log(f"S3 bucket {settings.bucket} already sends its events to SQS queue {settings.index_queue}")
        return
    old_handler = f"-{settings.stage}-{OLD_S3_HANDLER}"
    functions = current.get("LambdaFunctionConfigurations", [])
    kept = [c for c in functions if not c["LambdaFunctionArn"].endswith(old_handler)]
    if len(kept) != len(functions):
        log(f"S3 bucket {settings.bucket} no longer invokes {OLD_S3_HANDLER} (`chalice deploy` removes it)")
    configuration = {
        **current,
        "LambdaFunctionConfigurations": kept,
        "QueueConfigurations": [c for c in queues if c.get("Id") != NOTIFICATION_ID] + [ours],
    }
    s3.put_bucket_notification_configuration(
        Bucket=settings.bucket, NotificationConfiguration={k: v for k, v in configuration.items() if v}
    )
    log(f"S3 bucket {settings.bucket} sends its ObjectCreated and ObjectRemoved events to queue {settings.index_queue}")


# The alarms: a message in the dead-letter queue (a photo whose indexing kept
# failing); photos stuck (pending over a day while the queue does not drain
# at the stage's pace: the re-drive's PhotosStuck, every run; a long import
# at the quota's pace is not stuck); the collection nearly full (fewer faces
# left than COLLECTION_NEARLY_FULL of FACEPRINT_COLLECTION_FACES: the
# re-drive's CollectionFacesLeft).


def alarm_names(settings: Settings) -> tuple[str, str, str]:
    return (
        f"{settings.index_queue}-dead-letters",
        f"{settings.index_queue}-pending-too-long",
        f"{settings.collection}-nearly-full",
    )


def create_alarms(settings: Settings, cloudwatch, log: Log = print) -> None:
    dead_letters, pending, full = alarm_names(settings)
    existing = {
        a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNames=[*alarm_names(settings)])["MetricAlarms"]
    }
    common = {
        "Statistic": "Maximum",
        "EvaluationPeriods": 1,
        "Threshold": 0.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "TreatMissingData": "notBreaching",
    }
    ours = [{"Name": "Stage", "Value": settings.stage}]
    alarms = {
        dead_letters: {
            "AlarmDescription": (
                f"Photos of stage {settings.stage!r} whose indexing kept failing: their events are in SQS queue "
                f"{dead_letter_queue(settings)} and the photos `failed` (docs/deploy.md, 'The dead-letter queue')."
            ),
            "Namespace": "AWS/SQS",
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Dimensions": [{"Name": "QueueName", "Value": dead_letter_queue(settings)}],
            "Period": 300,
        },
        pending: {
            "AlarmDescription": (
                f"Photos of stage {settings.stage!r} pending for more than a day while the indexing queue does not "
                f"drain at the stage's pace (counted by the re-drive every {REDRIVE_EVERY_SECONDS // 60} minutes; "
                "docs/deploy.md, 'The dead-letter queue and the alarms')."
            ),
            "Namespace": METRICS_NAMESPACE,
            "MetricName": "PhotosStuck",
            "Dimensions": ours,
            "Period": 3 * REDRIVE_EVERY_SECONDS,
        },
        full: {
            "AlarmDescription": (
                f"Rekognition collection {settings.collection!r} of stage {settings.stage!r} has room for fewer "
                f"than {COLLECTION_NEARLY_FULL:.0%} of its {settings.collection_faces:,} faces "
                "(FACEPRINT_COLLECTION_FACES); once full, new photos are refused (docs/deploy.md, 'A full collection')."
            ),
            "Namespace": METRICS_NAMESPACE,
            "MetricName": "CollectionFacesLeft",
            "Dimensions": ours,
            "Period": 3 * REDRIVE_EVERY_SECONDS,
            "Statistic": "Minimum",
            "ComparisonOperator": "LessThanThreshold",
            "Threshold": float(int(COLLECTION_NEARLY_FULL * settings.collection_faces)),
        },
    }
    for name, alarm in alarms.items():
        wanted = {**common, **alarm}
        if name in existing and all(existing[name].get(field) == value for field, value in wanted.items()):
            log(f"CloudWatch alarm {name} already exists")
            continue
        # Actions someone added (an SNS topic to be told) are kept.
        actions = {key: existing[name][key] for key in ("AlarmActions", "OKActions") if existing.get(name, {}).get(key)}
        cloudwatch.put_metric_alarm(AlarmName=name, **wanted, **actions)
        log(f"{'updated' if name in existing else 'created'} CloudWatch alarm {name}")


def remove_alarms(settings: Settings, cloudwatch, log: Log = print) -> None:
    names = list(alarm_names(settings))
    if cloudwatch.describe_alarms(AlarmNames=names)["MetricAlarms"]:
        cloudwatch.delete_alarms(AlarmNames=names)
        log(f"deleted CloudWatch alarms {', '.join(names)}")


# The API's usage plan and key: the API exists once `chalice deploy` ran.


def usage_plan_name(settings: Settings) -> str:
    return f"faceprint-{settings.stage}-plan"


def api_key_name(settings: Settings, scope: str) -> str:
    return f"faceprint-{settings.stage}-{scope}"


def old_api_key_name(settings: Settings) -> str:
    """The stage's one key, before keys had scopes."""
    return f"faceprint-{settings.stage}-key"


def usage_plan(settings: Settings, api_id: str, api_stage: str) -> dict:
    """The plan `make aws-setup` wants for the stage's API."""
    search = {"rateLimit": settings.search_tps, "burstLimit": max(1, math.ceil(settings.search_tps))}
    return {
        "name": usage_plan_name(settings),
        "description": f"Faceprint stage {settings.stage!r}: searches at FACEPRINT_SEARCH_TPS={settings.search_tps:g}",
        "apiStages": [
            {
                "apiId": api_id,
                "stage": api_stage,
                "throttle": {f"{path}/{method}": search for path, method in SEARCH_ROUTES},
            }
        ],
        "throttle": {"rateLimit": float(API_RATE), "burstLimit": API_BURST},
        "quota": {"limit": API_RATE * MONTH_SECONDS, "period": "MONTH"},
    }


def create_usage_plan(settings: Settings, apigateway, log: Log = print, chalice_dir: Path = REPO / ".chalice") -> bool:
    """Create (or bring up to date) the plan and its keys, one per scope;
    False (and say what to do) while the API is not deployed."""
    api_id = deployed_api_id(settings.stage, apigateway, chalice_dir)
    if api_id is None:
        log(
            f"Stage {settings.stage!r} has no API yet: after `chalice deploy --stage {settings.stage}`, run this again "
            "to create its usage plan and API key."
        )
        return False
    config, stage_config = _stage_config(settings.stage, chalice_dir)
    wanted = usage_plan(settings, api_id, stage_config.get("api_gateway_stage", config.get("api_gateway_stage", "api")))
    plan = _find(apigateway.get_paginator("get_usage_plans").paginate(), wanted["name"])
    keys = []
    if plan is not None and _same_plan(plan, wanted):
        log(f"API usage plan {wanted['name']} already exists")
    else:
        if plan is not None:
            # Replaced whole: a plan's method throttles cannot all be patched in place.
            keys = [k["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]]
            _delete_plan(apigateway, plan, keys)
        plan = apigateway.create_usage_plan(**wanted)
        log(f"{'updated' if keys else 'created'} API usage plan {wanted['name']}")
    wanted_keys = [_scoped_key(settings, apigateway, scope, log) for scope in SCOPES]
    old_key = _old_key(settings, apigateway, log)
    attached = {k["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]}
    for key_id in dict.fromkeys([*keys, *wanted_keys, *([old_key] if old_key else [])]):
        if key_id not in attached:
            apigateway.create_usage_plan_key(usagePlanId=plan["id"], keyId=key_id, keyType="API_KEY")
    return True


def _scoped_key(settings: Settings, apigateway, scope: str, log: Log) -> str:
    """The stage's key of `scope` (api/scopes.py: read, write or admin), tagged with it."""
    name = api_key_name(settings, scope)
    key = _find(apigateway.get_api_keys(nameQuery=name)["items"], name)
    if key is None:
        key = apigateway.create_api_key(name=name, enabled=True, tags={SCOPE_TAG: scope})
        log(
            f"created API key {name} ({SCOPE_HELP[scope]}): its value is "
            f"`aws apigateway get-api-key --api-key {key['id']} --include-value --query value --output text`"
        )
    elif key.get("tags", {}).get(SCOPE_TAG) != scope:
        _tag_key(settings, apigateway, key["id"], scope)
        log(f"API key {name} is now a {scope} key")
    return key["id"]


def _old_key(settings: Settings, apigateway, log: Log) -> str | None:
    """The stage's key from before scopes, which clients may still send:
    an admin key, until it is deleted (docs/deploy.md, section 5)."""
    name = old_api_key_name(settings)
    key = _find(apigateway.get_api_keys(nameQuery=name)["items"], name)
    if key is None:
        return None
    if key.get("tags", {}).get(SCOPE_TAG) != "admin":
        _tag_key(settings, apigateway, key["id"], "admin")
        log(
            f"API key {name}, the stage's key before scopes, is now an admin key: give each client the read, "
            f"write or admin key it needs, then delete it (aws apigateway delete-api-key --api-key {key['id']})"
        )
    return key["id"]


def _tag_key(settings: Settings, apigateway, key_id: str, scope: str) -> None:
    region = settings.region or apigateway.meta.region_name
    apigateway.tag_resource(resourceArn=f"arn:aws:apigateway:{region}::/apikeys/{key_id}", tags={SCOPE_TAG: scope})


def remove_usage_plan(settings: Settings, apigateway, log: Log = print) -> None:
    plan = _find(apigateway.get_paginator("get_usage_plans").paginate(), usage_plan_name(settings))
    if plan is not None:
        keys = [k["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan["id"])["items"]]
        _delete_plan(apigateway, plan, keys)
        log(f"deleted API usage plan {usage_plan_name(settings)}")
    for name in [*(api_key_name(settings, scope) for scope in SCOPES), old_api_key_name(settings)]:
        key = _find(apigateway.get_api_keys(nameQuery=name)["items"], name)
        if key is not None:
            apigateway.delete_api_key(apiKey=key["id"])
            log(f"deleted API key {name}")


def deployed_api_id(stage: str, apigateway, chalice_dir: Path = REPO / ".chalice") -> str | None:
    """The stage's REST API: as `chalice deploy` recorded it in
    .chalice/deployed/<stage>.json, else the one API named after the app."""
    deployed = chalice_dir / "deployed" / f"{stage}.json"
    if deployed.exists():
        resources = json.loads(deployed.read_text()).get("resources", [])
        found = [r["rest_api_id"] for r in resources if r.get("resource_type") == "rest_api"]
        if found:
            return found[0]
    config, _ = _stage_config(stage, chalice_dir)
    apis = [
        api["id"]
        for page in apigateway.get_paginator("get_rest_apis").paginate()
        for api in page["items"]
        if api["name"] == config["app_name"]
    ]
    if len(apis) > 1:
        raise ConfigurationError(
            f"{len(apis)} APIs are named {config['app_name']!r} and .chalice/deployed/{stage}.json does not say which "
            f"is stage {stage!r}: run this from the checkout that deployed it."
        )
    return apis[0] if apis else None


def _find(pages, name: str) -> dict | None:
    items = pages if isinstance(pages, list) else [item for page in pages for item in page["items"]]
    return next((item for item in items if item["name"] == name), None)


def _same_plan(plan: dict, wanted: dict) -> bool:
    return all(plan.get(name) == wanted[name] for name in ("apiStages", "throttle", "quota"))


def _delete_plan(apigateway, plan: dict, keys: list[str]) -> None:
    for key_id in keys:
        apigateway.delete_usage_plan_key(usagePlanId=plan["id"], keyId=key_id)
    stages = [
        {"op": "remove", "path": "/apiStages", "value": f"{s['apiId']}:{s['stage']}"} for s in plan.get("apiStages", [])
    ]
    if stages:
        apigateway.update_usage_plan(usagePlanId=plan["id"], patchOperations=stages)
    apigateway.delete_usage_plan(usagePlanId=plan["id"])


# The custom domain's DNS record: an alias A record in the hosted zone to the
# API Gateway domain name that `chalice deploy` creates.


def point_domain_at_api(domain: CustomDomain, zone_id: str, apigateway, route53, log: Log = print) -> bool:
    """Create or correct the alias record; False (and say what to do) while
    the API Gateway domain does not exist yet."""
    zone_name = _zone_name(route53, zone_id, domain)
    try:
        target = apigateway.get_domain_name(domainName=domain.name)
    except ClientError as e:
        if _code(e) != "NotFoundException":
            raise
        log(
            f"The API Gateway domain {domain.name} does not exist yet: `chalice deploy` creates it. "
            "Run this again after the deploy to point the DNS record at it."
        )
        return False
    if "REGIONAL" in target.get("endpointConfiguration", {}).get("types", []):
        alias = {"HostedZoneId": target["regionalHostedZoneId"], "DNSName": target["regionalDomainName"]}
    else:
        alias = {"HostedZoneId": target["distributionHostedZoneId"], "DNSName": target["distributionDomainName"]}
    alias["EvaluateTargetHealth"] = False
    existing = _a_record(route53, zone_id, domain.name)
    if existing is not None and "AliasTarget" not in existing:
        raise ConfigurationError(
            f"{domain.name} already has an A record in the hosted zone {zone_name} that is not an alias "
            f"({existing.get('ResourceRecords')}): delete it, or choose another domain_name."
        )
    if existing is not None and _same_alias(existing["AliasTarget"], alias):
        log(f"DNS record {domain.name} already points at {alias['DNSName']}")
        return True
    record = {"Name": domain.name, "Type": "A", "AliasTarget": alias}
    try:
        route53.change_resource_record_sets(
            HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "UPSERT", "ResourceRecordSet": record}]}
        )
    except ClientError as e:
        if _code(e) != "InvalidChangeBatch":
            raise
        raise ConfigurationError(
            f"Route53 refused the A record for {domain.name}: {e.response['Error'].get('Message', '')}"
        ) from e
    log(f"{'updated' if existing else 'created'} DNS record {domain.name} -> {alias['DNSName']}")
    return True


def remove_domain_record(domain: CustomDomain, zone_id: str, route53, log: Log = print) -> None:
    """Delete the alias record that point_domain_at_api made, if it is there."""
    _zone_name(route53, zone_id, domain)
    existing = _a_record(route53, zone_id, domain.name)
    if existing is None or "AliasTarget" not in existing:
        return
    route53.change_resource_record_sets(
        HostedZoneId=zone_id, ChangeBatch={"Changes": [{"Action": "DELETE", "ResourceRecordSet": existing}]}
    )
    log(f"deleted DNS record {domain.name}")


def _zone_name(route53, zone_id: str, domain: CustomDomain) -> str:
    try:
        zone = route53.get_hosted_zone(Id=zone_id)["HostedZone"]
    except ClientError as e:
        if _code(e) != "NoSuchHostedZone":
            raise
        raise ConfigurationError(f"No Route53 hosted zone {zone_id!r} in this account (HOSTED_ZONE).") from e
    name = zone["Name"].lower().rstrip(".")
    if domain.name != name and not domain.name.endswith("." + name):
        raise ConfigurationError(
            f"The hosted zone {zone_id} is {name}, which cannot hold {domain.name}: give the zone of the domain."
        )
    return name


def _a_record(route53, zone_id: str, name: str) -> dict | None:
    records = route53.list_resource_record_sets(
        HostedZoneId=zone_id, StartRecordName=name, StartRecordType="A", MaxItems="1"
    )["ResourceRecordSets"]
    if records and records[0]["Type"] == "A" and _dns(records[0]["Name"]) == name:
        return records[0]
    return None


def _same_alias(a: dict, b: dict) -> bool:
    return a["HostedZoneId"] == b["HostedZoneId"] and _dns(a["DNSName"]) == _dns(b["DNSName"])


def _dns(name: str) -> str:
    return name.lower().rstrip(".")


# The bucket and the tables.


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
    if s3.get_bucket_versioning(Bucket=bucket).get("Status") != "Enabled":
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        log(f"enabled versioning on S3 bucket {bucket}")
    # Both configurations replace what is there: keep rules of other owners.
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    except ClientError as e:
        if _code(e) != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": _with_rule(rules, LIFECYCLE_RULE)}
    )
    try:
        cors = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    except ClientError as e:
        if _code(e) != "NoSuchCORSConfiguration":
            raise
        cors = []
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": _with_rule(cors, CORS_RULE)})
    _require_tls(s3, bucket, log)


def _require_tls(s3, bucket: str, log: Log) -> None:
    """The bucket policy with our TLS-only statement, and every other
    statement it held (another owner's) kept."""
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as e:
        if _code(e) != "NoSuchBucketPolicy":
            raise
        policy = {"Version": "2012-10-17", "Statement": []}
    ours = tls_only_statement(bucket)
    if ours in policy["Statement"]:
        return
    policy["Statement"] = [st for st in policy["Statement"] if st.get("Sid") != TLS_ONLY_SID] + [ours]
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    log(f"S3 bucket {bucket} now refuses requests made without TLS")


def _with_rule(rules: list[dict], ours: dict) -> list[dict]:
    return [rule for rule in rules if rule.get("ID") != ours["ID"]] + [ours]


def _create_table(dynamodb, table: str, key: str, log: Log, indexes: tuple[dict, ...] = ()) -> None:
    attributes = {key} | {part["AttributeName"] for index in indexes for part in index["KeySchema"]}
    request = {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": name, "AttributeType": "S"} for name in sorted(attributes)],
        "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    if indexes:
        request["GlobalSecondaryIndexes"] = list(indexes)
    try:
        dynamodb.create_table(**request)
        log(f"created DynamoDB table {table} (on-demand, key {key})")
    except ClientError as e:
        if _code(e) != "ResourceInUseException":
            raise
        log(f"DynamoDB table {table} already exists")


def _add_index(dynamodb, table: str, index: dict, log: Log) -> None:
    """Add a global secondary index to a table made without it."""
    described = dynamodb.describe_table(TableName=table)["Table"]
    if any(i["IndexName"] == index["IndexName"] for i in described.get("GlobalSecondaryIndexes", [])):
        return
    attributes = {a["AttributeName"]: a for a in described["AttributeDefinitions"]}
    for part in index["KeySchema"]:
        attributes.setdefault(part["AttributeName"], {"AttributeName": part["AttributeName"], "AttributeType": "S"})
    dynamodb.update_table(
        TableName=table,
        AttributeDefinitions=list(attributes.values()),
        GlobalSecondaryIndexUpdates=[{"Create": index}],
    )
    log(f"adding index {index['IndexName']} to DynamoDB table {table}")


def _wait_for_index(dynamodb, table: str, name: str, log: Log, sleep=time.sleep) -> None:
    waited, said = 0, False
    while True:
        indexes = dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
        status = next((i["IndexStatus"] for i in indexes if i["IndexName"] == name), "MISSING")
        if status == "ACTIVE":
            return
        if status in ("MISSING", "DELETING") or waited >= INDEX_WAIT_SECONDS:
            raise ConfigurationError(
                f"The index {name} of DynamoDB table {table} is {status} after {waited} s: "
                "check the table in the AWS console, then run this again."
            )
        if not said:
            log(f"waiting for index {name} of DynamoDB table {table} to be ACTIVE ({status})")
            said = True
        sleep(10)
        waited += 10


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
        log(f"deleted S3 bucket {bucket}, every version of its photos")
    except ClientError as e:
        if _code(e) != "NoSuchBucket":
            raise


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _boto3_clients():
    """boto3's usual chain: (region, service name -> client)."""
    import boto3

    session = boto3.session.Session()
    return session.region_name, session.client


EPILOG = """\
what it needs:
  AWS credentials and a region, from boto3's usual chain: `aws configure`, AWS_PROFILE
  (after `aws sso login`), or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY with AWS_DEFAULT_REGION.
  The stage's resource names in .chalice/config.json, the same in .chalice/policy-<stage>.json
  (docs/deploy.md, step 1). `make doctor STAGE=dev` checks all of this and says what is missing.

exit status: 0 done; 1 teardown not confirmed; 2 nothing done or stopped part way, and why is printed.
"""


def main(
    argv: list[str] | None = None, clients=_boto3_clients, stdin=None, chalice_dir: Path = REPO / ".chalice"
) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.ops.aws_setup",
        description=__doc__.split("\n\n")[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "action", choices=("create", "teardown"), help="create (or bring up to date), or delete everything"
    )
    parser.add_argument("--stage", required=True, help="a stage of .chalice/config.json (dev, prod)")
    parser.add_argument("--yes", action="store_true", help="teardown without asking (needed without a terminal)")
    parser.add_argument(
        "--hosted-zone", help="Route53 hosted zone id of the stage's custom domain: create (or delete) its A record"
    )
    args = parser.parse_args(argv)
    stdin = stdin or sys.stdin
    try:
        environment = stage_environment(args.stage, chalice_dir)
        settings = stage_settings(environment)
        domain = stage_custom_domain(args.stage, chalice_dir)
        if args.hosted_zone and domain is None:
            raise ConfigurationError(
                f"--hosted-zone is for a custom domain, and stage {args.stage!r} has no api_gateway_custom_domain "
                "in .chalice/config.json (docs/deploy.md, 'A custom domain')."
            )
        if args.action == "create":
            check_policy(settings, chalice_dir)
            if domain:
                check_custom_domain(domain, args.stage)
        elif not args.yes and not stdin.isatty():
            raise ConfigurationError(
                f"Teardown deletes every photo, record and face of stage {args.stage!r}, and there is no terminal "
                "to confirm it: pass --yes (make aws-teardown STAGE=... YES=1) to delete without asking."
            )
    except ConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    region = None
    try:
        region, client = clients()
        if not region:
            raise NoRegionError()
        return _act(args, environment, domain, region, client, stdin, chalice_dir)
    except ConfigurationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as e:
        print(f"error: {aws_problem(e, region)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nStopped. Run it again: it creates what is missing and leaves what exists.", file=sys.stderr)
        return 0 if os.environ.get("MAKELEVEL") else 130  # under make, make reports the Ctrl-C itself


def _act(
    args, environment: dict[str, str], domain: CustomDomain | None, region: str, client, stdin, chalice_dir: Path
) -> int:
    settings = Settings.from_env({**environment, "AWS_REGION": region})
    s3, dynamodb, rekognition = (client(name) for name in ("s3", "dynamodb", "rekognition"))
    indexing = {name: client(name) for name in ("sqs", "cloudwatch", "apigateway", "logs")}
    if args.action == "create":
        if domain:
            check_custom_domain(domain, args.stage, region)
        create_stage(settings, s3, dynamodb, rekognition, **indexing, chalice_dir=chalice_dir)
        if domain and args.hosted_zone:
            point_domain_at_api(domain, args.hosted_zone, client("apigateway"), client("route53"))
        elif domain:
            print(
                f"Stage {args.stage!r} serves {domain.name}: after `chalice deploy`, run this again with "
                "--hosted-zone <Route53 zone id> (make aws-setup HOSTED_ZONE=...) to create its DNS record, "
                "or point it at the domain's target yourself."
            )
        return 0
    if not args.yes:
        print(f"Delete every photo, record and face of stage {args.stage!r}? Type the stage name: ", end="")
        sys.stdout.flush()
        if stdin.readline().strip() != args.stage:
            print("Nothing deleted.")
            return 1
    teardown_stage(settings, s3, dynamodb, rekognition, **indexing)
    if domain and args.hosted_zone:
        remove_domain_record(domain, args.hosted_zone, client("route53"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
