"""The DynamoDB and S3 stores against moto; batching details against
botocore's Stubber."""

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib.aws.dynamodb import BATCH_ATTEMPTS, DynamoRecordStore
from chalicelib.aws.s3 import S3PhotoStore
from chalicelib.core import errors
from chalicelib.core.ports import StoredPhoto
from tests.support.fake_rekognition import AWS_ENV, REGION, load_setup_script

BUCKET, IMAGES, FACES = "photos-test", "images-test", "faces-test"


@pytest.fixture
def clients(monkeypatch):
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        setup = load_setup_script()
        settings = setup.stage_settings(
            {
                "FACEPRINT_STAGE": "test",
                "FACEPRINT_ENGINE": "rekognition",
                "FACEPRINT_BUCKET": BUCKET,
                "FACEPRINT_IMAGES_TABLE": IMAGES,
                "FACEPRINT_FACES_TABLE": FACES,
                "FACEPRINT_COLLECTION": "unused",
            }
        )
        setup._create_bucket(s3, BUCKET, REGION, log=lambda _: None)
        setup._create_table(dynamodb, IMAGES, "key", log=lambda _: None)
        setup._create_table(dynamodb, FACES, "FaceId", log=lambda _: None)
        assert settings.bucket == BUCKET
        yield s3, dynamodb


@pytest.fixture
def records(clients):
    return DynamoRecordStore(clients[1], IMAGES, FACES, BUCKET, stage="test")


@pytest.fixture
def photos(clients):
    return S3PhotoStore(clients[0], BUCKET, stage="test")


def _image(key: str, etag: str = "e1", status: str = "indexed", count: int = 0, **extra) -> dict:
    return {
        "key": key,
        "status": status,
        "metadata": {"name": "Keanu"},
        "contentType": "image/jpeg",
        "size": 1234,
        "etag": etag,
        "faceCount": count,
        "updatedAt": "2026-01-01T00:00:00.000+00:00",
        **extra,
    }


def _face(face_id: str, key: str, left: float = 0.25) -> dict:
    return {
        "FaceId": face_id,
        "BoundingBox": {"Width": 0.5, "Height": 0.375, "Left": left, "Top": 0.1},
        "ImageId": "img-1",
        "ExternalImageId": key,
        "Confidence": 99.87654321,
        "IndexFacesModelVersion": "7.0",
        "imageKey": key,
    }


# S3


def test_a_stored_photo_keeps_its_type_metadata_and_etag(photos):
    stored = photos.put(StoredPhoto("a b é.jpg", "", 5, "image/jpeg", {"name": "Keanu"}), b"\xff\xd8\xffab")
    assert not stored.etag.startswith('"')
    assert photos.head("a b é.jpg") == StoredPhoto("a b é.jpg", stored.etag, 5, "image/jpeg", {"name": "Keanu"})
    assert photos.read("a b é.jpg") == b"\xff\xd8\xffab"


def test_a_missing_photo_has_no_head_and_cannot_be_read(photos):
    assert photos.head("nope.jpg") is None
    with pytest.raises(errors.NotFound):
        photos.read("nope.jpg")


def test_deleting_a_photo_twice_is_fine(photos):
    photos.put(StoredPhoto("x.jpg", "", 3, "image/jpeg"), b"abc")
    photos.delete("x.jpg")
    photos.delete("x.jpg")
    assert photos.head("x.jpg") is None


def test_photos_are_listed_a_page_at_a_time(photos):
    for i in range(3):
        photos.put(StoredPhoto(f"{i}.jpg", "", 1, "image/jpeg"), b"x")
    first = photos.list(2)
    second = photos.list(2, first.next)
    assert [p.key for p in first.items + second.items] == ["0.jpg", "1.jpg", "2.jpg"]
    assert second.next is None


def test_a_missing_bucket_is_a_configuration_error_naming_it(clients):
    with pytest.raises(errors.ConfigurationError, match="'no-such-bucket'.*'test'"):
        S3PhotoStore(clients[0], "no-such-bucket", stage="test").put(StoredPhoto("k", "", 1, "image/jpeg"), b"x")


# DynamoDB


def test_an_image_and_its_faces_read_back_as_plain_json(records):
    faces = [_face("f1", "k.jpg"), _face("f2", "k.jpg", left=0.0)]
    records.save_image(_image("k.jpg", count=2), faces)
    assert records.get_image("k.jpg") == _image("k.jpg", count=2)
    assert records.faces_of("k.jpg") == faces
    json.dumps(records.faces_of("k.jpg"))  # no Decimal left
    assert isinstance(records.faces_of("k.jpg")[0]["Confidence"], float)


def test_find_faces_returns_each_face_with_its_image_metadata(records):
    records.save_image(_image("k.jpg", count=1), [_face("f1", "k.jpg")])
    assert records.find_faces(["f1", "gone"]) == {"f1": (_face("f1", "k.jpg"), {"name": "Keanu"})}
    assert records.get_face("f1") == _face("f1", "k.jpg")
    assert records.get_face("gone") is None


def test_marking_the_same_version_pending_again_changes_nothing(records):
    records.save_image(_image("k.jpg", count=1), [_face("f1", "k.jpg")])
    records.mark_pending(_image("k.jpg", status="pending"))
    assert records.get_image("k.jpg")["status"] == "indexed"


def test_a_new_version_is_pending_and_keeps_the_old_faces_until_indexed(records):
    records.save_image(_image("k.jpg", count=1, imageId="img-1"), [_face("f1", "k.jpg")])
    records.mark_pending(_image("k.jpg", etag="e2", status="pending"))
    assert records.get_image("k.jpg") == _image("k.jpg", etag="e2", status="pending")
    assert [f["FaceId"] for f in records.faces_of("k.jpg")] == ["f1"]


def test_saving_an_image_replaces_its_faces(records):
    records.save_image(_image("k.jpg", count=2), [_face("f1", "k.jpg"), _face("f2", "k.jpg")])
    records.save_image(_image("k.jpg", etag="e2", count=1), [_face("f3", "k.jpg")])
    assert [f["FaceId"] for f in records.faces_of("k.jpg")] == ["f3"]
    assert records.find_faces(["f1", "f2"]) == {}


def test_deleting_a_face_drops_it_from_its_image(records):
    records.save_image(_image("k.jpg", count=2), [_face("f1", "k.jpg"), _face("f2", "k.jpg")])
    records.delete_face("f1")
    records.delete_face("f1")
    assert [f["FaceId"] for f in records.faces_of("k.jpg")] == ["f2"]
    assert records.get_image("k.jpg")["faceCount"] == 1


def test_deleting_an_image_removes_its_faces_and_is_idempotent(records):
    records.save_image(_image("k.jpg", count=1), [_face("f1", "k.jpg")])
    records.delete_image("k.jpg")
    records.delete_image("k.jpg")
    assert records.get_image("k.jpg") is None
    assert records.get_face("f1") is None
    assert records.count_images() == 0


def test_images_and_faces_are_listed_with_opaque_tokens(records):
    for i in range(3):
        records.save_image(_image(f"{i}.jpg", count=1), [_face(f"f{i}", f"{i}.jpg")])
    keys, token = [], None
    for _ in range(5):
        page = records.list_images(2, token)
        keys += [image["key"] for image in page.items]
        token = page.next
        if token is None:
            break
    assert sorted(keys) == ["0.jpg", "1.jpg", "2.jpg"]
    faces = records.list_faces(10)
    assert sorted(f["FaceId"] for f in faces.items) == ["f0", "f1", "f2"]
    assert records.count_images() == 3


def test_a_forged_listing_token_is_a_bad_request(records):
    with pytest.raises(errors.BadRequest):
        records.list_images(2, "not-a-token")
    with pytest.raises(errors.BadRequest):
        records.list_faces(2, "eyJGYWNlSWQiOiB7Ik4iOiAiMSJ9fQ")  # {"FaceId": {"N": "1"}}


def test_search_reads_all_matches_in_batches_never_one_get_per_match(records, clients):
    faces = [_face(f"f{i:03d}", "k.jpg") for i in range(150)]
    records.save_image(_image("k.jpg", count=150), faces)
    calls = []
    clients[1].meta.events.register(
        "provide-client-params.dynamodb.*", lambda params, model, **_: calls.append(model.name)
    )
    found = records.find_faces([f["FaceId"] for f in faces])
    assert len(found) == 150
    assert calls == ["BatchGetItem", "BatchGetItem"]


def test_a_missing_table_is_a_configuration_error_naming_it_and_the_stage(clients):
    store = DynamoRecordStore(clients[1], "no-such-images", FACES, BUCKET, stage="test")
    with pytest.raises(errors.ConfigurationError, match="'no-such-images'.*'test'"):
        store.get_image("k.jpg")


def test_unprocessed_keys_are_retried_with_backoff():
    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    sleeps = []
    store = DynamoRecordStore(client, IMAGES, FACES, BUCKET, sleep=sleeps.append)
    item = {"FaceId": {"S": "f1"}, "imageKey": {"S": "k.jpg"}, "metadata": {"M": {"name": {"S": "Keanu"}}}}
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
        assert store.find_faces(["f1"]) == {"f1": ({"FaceId": "f1", "imageKey": "k.jpg"}, {"name": "Keanu"})}
        stub.assert_no_pending_responses()
    assert len(sleeps) == 1


def test_reads_deferred_for_too_long_are_a_503():
    client = boto3.client("dynamodb", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x")
    store = DynamoRecordStore(client, IMAGES, FACES, BUCKET, sleep=lambda _: None)
    unprocessed = {"Responses": {}, "UnprocessedKeys": {FACES: {"Keys": [{"FaceId": {"S": "f1"}}]}}}
    with Stubber(client) as stub:
        for _ in range(BATCH_ATTEMPTS):
            stub.add_response("batch_get_item", unprocessed)
        with pytest.raises(errors.ServiceUnavailable):
            store.find_faces(["f1"])
