"""What `make aws-setup` does for backups on AWS: point-in-time recovery on
the three tables (any second of the last 35 days, restorable into a new
table) and a versioned bucket, idempotently (moto)."""

from moto import mock_aws

from tests.support.fake_rekognition import AWS_ENV, REGION, FakeRekognition, load_setup_script


def test_setup_turns_point_in_time_recovery_on_for_every_table_once(monkeypatch):
    import boto3

    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    setup = load_setup_script()
    settings = setup.stage_settings(setup.stage_environment("dev"))
    with mock_aws():
        s3, dynamodb = boto3.client("s3", region_name=REGION), boto3.client("dynamodb", region_name=REGION)
        indexing = {name: boto3.client(name, region_name=REGION) for name in ("sqs", "cloudwatch", "apigateway")}
        said: list[str] = []
        setup.create_stage(settings, s3, dynamodb, FakeRekognition(s3), log=said.append, **indexing)
        tables = (settings.images_table, settings.faces_table, settings.people_table)
        for table in tables:
            described = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
            assert described["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        assert sum("point-in-time recovery" in line for line in said) == 3
        assert s3.get_bucket_versioning(Bucket=settings.bucket)["Status"] == "Enabled"
        said.clear()
        setup.create_stage(settings, s3, dynamodb, FakeRekognition(s3), log=said.append, **indexing)
        assert not any("point-in-time recovery" in line for line in said)
