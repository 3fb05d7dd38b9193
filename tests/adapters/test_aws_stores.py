"""The DynamoDB and S3 stores against moto; batching details against
botocore's Stubber."""

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib.aws import clients as aws
from chalicelib.aws.dynamodb import BATCH_ATTEMPTS, DynamoRecordStore
from chalicelib.aws.s3 import S3PhotoStore
from chalicelib.core import errors
from chalicelib.core.ports import ListedPhoto, StoredPhoto
from tests.support.fake_rekognition import AWS_ENV, REGION, load_setup_script
from tests.support.records import face, image

BUCKET, IMAGES, FACES, PEOPLE = "photos-test", "images-test", "faces-test", "people-test"


@pytest.fixture
def clients(monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=aws.config_for("s3"))
        dynamodb = boto3.client("dynamodb", region_name=REGION, config=aws.config_for("dynamodb"))
        setup = load_setup_script()
        settings = setup.stage_settings(
            {
                "FACEPRINT_STAGE": "test",
                "FACEPRINT_ENGINE": "rekognition",
                "FACEPRINT_BUCKET": BUCKET,
                "FACEPRINT_IMAGES_TABLE": IMAGES,
                "FACEPRINT_FACES_TABLE": FACES,
                "FACEPRINT_PEOPLE_TABLE": PEOPLE,
                "FACEPRINT_COLLECTION": "unused",
                "FACEPRINT_INDEX_QUEUE": "unused",
            }
        )
        setup._create_bucket(s3, BUCKET, REGION, log=lambda _: None)
        setup.create_tables(dynamodb, settings, log=lambda _: None)
        assert settings.bucket == BUCKET
        yield s3, dynamodb


@pytest.fixture
def records(clients):
    return DynamoRecordStore(clients[1], IMAGES, FACES, BUCKET, PEOPLE, stage="test")


@pytest.fixture
def photos(clients):
    return S3PhotoStore(clients[0], BUCKET, stage="test")


# S3


def test_a_stored_photo_keeps_its_type_metadata_and_etag(photos):
    stored = photos.put("a b é.jpg", b"\xff\xd8\xffab", "image/jpeg", {"name": "Keanu"})
    assert not stored.etag.startswith('"')
    head = photos.head("a b é.jpg")
    assert head == StoredPhoto("a b é.jpg", stored.etag, 5, "image/jpeg", {"name": "Keanu"}, stored.version_id)
    assert head.version_id  # make aws-setup versions the bucket
    assert photos.read("a b é.jpg") == b"\xff\xd8\xffab"


def test_a_missing_photo_has_no_head_and_cannot_be_read(photos):
    assert photos.head("nope.jpg") is None
    with pytest.raises(errors.NotFound):
        photos.read("nope.jpg")


def test_deleting_a_photo_twice_is_fine(photos):
    photos.put("x.jpg", b"abc", "image/jpeg", {})
    photos.delete("x.jpg")
    photos.delete("x.jpg")
    assert photos.head("x.jpg") is None


def test_in_a_versioned_bucket_each_put_is_a_version_and_delete_removes_them_all(photos, clients):
    s3 = clients[0]
    first = photos.put("x.jpg", b"one", "image/jpeg", {})
    second = photos.put("x.jpg", b"two", "image/jpeg", {})
    photos.put("x.jpg.bak", b"other", "image/jpeg", {})  # shares the prefix: must survive
    assert first.version_id and second.version_id and first.version_id != second.version_id
    assert photos.head("x.jpg").version_id == second.version_id
    photos.delete("x.jpg")
    left = s3.list_object_versions(Bucket=BUCKET)
    assert [v["Key"] for v in left.get("Versions", [])] == ["x.jpg.bak"]
    assert left.get("DeleteMarkers", []) == []


def test_a_download_link_is_a_presigned_get_valid_five_minutes(photos):
    photos.put("a b.jpg", b"x", "image/jpeg", {})
    link = photos.download_url("a b.jpg")
    assert "a%20b.jpg" in link and "X-Amz-Expires=300" in link and "X-Amz-Signature=" in link


def test_photos_are_listed_a_page_at_a_time_with_no_type_or_metadata(photos):
    for i in range(3):
        photos.put(f"{i}.jpg", b"x", "image/jpeg", {"name": "n"})
    first = photos.list(2)
    second = photos.list(2, first.next)
    assert [p.key for p in first.items + second.items] == ["0.jpg", "1.jpg", "2.jpg"]
    assert all(isinstance(p, ListedPhoto) for p in first.items)
    assert second.next is None


def test_a_missing_bucket_is_a_configuration_error_naming_it(clients):
    with pytest.raises(errors.ConfigurationError, match="'no-such-bucket'.*'test'"):
        S3PhotoStore(clients[0], "no-such-bucket", stage="test").put("k", b"x", "image/jpeg", {})


# DynamoDB (what every record store does: tests/contract/test_record_stores.py)


def test_an_image_written_before_revisions_counts_as_revision_zero(records, clients):
    clients[1].put_item(
        TableName=IMAGES,
        Item={"key": {"S": "old.jpg"}, "etag": {"S": "e1"}, "record": {"M": {"key": {"S": "old.jpg"}}}},
    )
    legacy = records.get_image("old.jpg")
    assert legacy["revision"] == 0
    assert records.put_image(image("old.jpg", status="pending"), 1) is None
    assert records.put_image(image("old.jpg", status="pending"), 0)["revision"] == 1


def test_due_records_are_found_through_the_sparse_index_a_page_at_a_time(records, clients):
    """The `due` index, one Query per shard, the longest due first: the
    re-drive reads about what it asks for, never the whole backlog, and a
    count reads nothing it keeps."""
    for minute in range(30):
        due = f"2026-01-01T00:{minute:02d}:00.000+00:00"
        records.put_image(image(f"{minute:02d}.jpg", status="pending", pendingSince=due, retryAt=due), None)
    records.commit_faces(image("done.jpg"), [], None)
    queries, scans = [], []
    clients[1].meta.events.register("provide-client-params.dynamodb.Query", lambda params, **_: queries.append(params))
    clients[1].meta.events.register("provide-client-params.dynamodb.Scan", lambda params, **_: scans.append(params))
    assert records.list_pending("2026-01-01T00:20:00.000+00:00", 5) == [
        "00.jpg",
        "01.jpg",
        "02.jpg",
        "03.jpg",
        "04.jpg",
    ]
    assert scans == [] and {q["IndexName"] for q in queries} == {"due"} and all(q["Limit"] <= 5 for q in queries)
    assert records.list_pending("2026-01-01T00:20:00.000+00:00", 100) == [f"{m:02d}.jpg" for m in range(20)]
    assert records.count_pending("2026-01-01T00:20:00.000+00:00", 1000) == 20
    assert records.count_pending("2026-01-01T00:20:00.000+00:00", 7) == 7
    assert all(q.get("Select") == "COUNT" for q in queries[-4:])
    item = clients[1].get_item(TableName=IMAGES, Key={"key": {"S": "done.jpg"}})["Item"]
    assert "pendingSince" not in item and "dueShard" not in item  # only due records are in the index


def test_a_table_without_the_due_index_is_read_through_the_older_one(clients):
    dynamodb = clients[1]
    dynamodb.delete_table(TableName=IMAGES)
    older = {
        "IndexName": "pending",
        "KeySchema": [{"AttributeName": "pendingSince", "KeyType": "HASH"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }
    load_setup_script()._create_table(dynamodb, IMAGES, "key", log=lambda _: None, indexes=(older,))
    records = DynamoRecordStore(dynamodb, IMAGES, FACES, BUCKET, PEOPLE, stage="test")
    dynamodb.put_item(TableName=IMAGES, Item={"key": {"S": "b.jpg"}, "pendingSince": {"S": "2026-01-01T00:02"}})
    dynamodb.put_item(TableName=IMAGES, Item={"key": {"S": "a.jpg"}, "pendingSince": {"S": "2026-01-01T00:01"}})
    assert records.list_pending("2026-02-01", 10) == ["a.jpg", "b.jpg"]
    assert records.count_pending("2026-02-01", 10) == 2


def test_a_forged_listing_token_is_a_bad_request(records):
    with pytest.raises(errors.BadRequest):
        records.list_images(2, "not-a-token")
    with pytest.raises(errors.BadRequest):
        records.list_faces(2, "eyJGYWNlSWQiOiB7Ik4iOiAiMSJ9fQ")  # {"FaceId": {"N": "1"}}


def test_search_reads_all_matches_in_batches_never_one_get_per_match(records, clients):
    faces = [face(f"f{i:03d}", "k.jpg") for i in range(150)]
    records.commit_faces(image("k.jpg", count=150), faces, None)
    calls = []
    clients[1].meta.events.register(
        "provide-client-params.dynamodb.*", lambda params, model, **_: calls.append(model.name)
    )
    found = records.find_faces([f["FaceId"] for f in faces])
    assert len(found) == 150 and found["f000"][1] == {"name": "Keanu"}
    assert calls == ["BatchGetItem", "BatchGetItem", "BatchGetItem"]  # the faces in two, their image in one


def test_a_missing_table_is_a_configuration_error_naming_it_and_the_stage(clients):
    store = DynamoRecordStore(clients[1], "no-such-images", FACES, BUCKET, PEOPLE, stage="test")
    with pytest.raises(errors.ConfigurationError, match="'no-such-images'.*'test'"):
        store.get_image("k.jpg")


def test_unprocessed_keys_are_retried_with_backoff():
    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    sleeps = []
    store = DynamoRecordStore(client, IMAGES, FACES, BUCKET, PEOPLE, sleep=sleeps.append)
    item = {"FaceId": {"S": "f1"}, "imageKey": {"S": "k.jpg"}}
    image_item = {
        "key": {"S": "k.jpg"},
        "record": {"M": {"metadata": {"M": {"name": {"S": "Keanu"}}}}},
        "faceIds": {"L": [{"S": "f1"}]},
    }
    with Stubber(client) as stub:
        stub.add_response(
            "batch_get_item",
            {
                "Responses": {FACES: []},
                "UnprocessedKeys": {FACES: {"Keys": [{"FaceId": {"S": "f1"}}], "ConsistentRead": True}},
            },
        )
        stub.add_response(
            "batch_get_item",
            {"Responses": {FACES: [item]}},
            {"RequestItems": {FACES: {"Keys": [{"FaceId": {"S": "f1"}}], "ConsistentRead": True}}},
        )
        stub.add_response("batch_get_item", {"Responses": {IMAGES: [image_item]}})
        assert store.find_faces(["f1"]) == {"f1": ({"FaceId": "f1", "imageKey": "k.jpg"}, {"name": "Keanu"})}
        stub.assert_no_pending_responses()
    assert len(sleeps) == 1


def test_reads_deferred_for_too_long_are_a_503():
    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    store = DynamoRecordStore(client, IMAGES, FACES, BUCKET, PEOPLE, sleep=lambda _: None)
    unprocessed = {"Responses": {}, "UnprocessedKeys": {FACES: {"Keys": [{"FaceId": {"S": "f1"}}]}}}
    with Stubber(client) as stub:
        for _ in range(BATCH_ATTEMPTS):
            stub.add_response("batch_get_item", unprocessed)
        with pytest.raises(errors.ServiceUnavailable):
            store.find_faces(["f1"])
