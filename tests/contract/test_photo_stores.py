"""One promise of the photo stores, in the three of them (the in-memory
fake, the files of the embedded stage, S3 in moto): a photo's metadata can
be replaced, and no version keeps the old one (an erasure takes a name out
of a photo it keeps)."""

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from chalicelib.aws import clients as aws
from chalicelib.aws.s3 import S3PhotoStore
from chalicelib.embedded.photos import FilePhotoStore
from chalicelib.ops.memory import InMemoryPhotoStore
from tests.support.fake_rekognition import AWS_ENV, REGION, load_setup_script

BUCKET = "photos-test"


@pytest.fixture(params=["memory", "files", "s3"])
def photos(request, tmp_path, monkeypatch) -> Iterator:
    if request.param == "memory":
        yield InMemoryPhotoStore()
    elif request.param == "files":
        yield FilePhotoStore(tmp_path / "photos")
    else:
        for name, value in AWS_ENV.items():
            monkeypatch.setenv(name, value)
        with mock_aws():
            s3 = boto3.client("s3", region_name=REGION, config=aws.config_for("s3"))
            load_setup_script()._create_bucket(s3, BUCKET, REGION, log=lambda _: None)
            yield S3PhotoStore(s3, BUCKET, stage="test")


def every_stored_byte(photos, tmp_path) -> bytes:
    """All that the store keeps, every version and description included."""
    if isinstance(photos, InMemoryPhotoStore):
        history = [v for versions in photos._history.values() for v in versions]
        return b"".join(repr(v.photo).encode() + v.data for v in history)
    if isinstance(photos, FilePhotoStore):
        return b"".join(path.read_bytes() for path in sorted((tmp_path / "photos").iterdir()))
    client = photos._client
    versions = client.list_object_versions(Bucket=BUCKET).get("Versions", [])
    return b"".join(
        repr(client.head_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Metadata"]).encode()
        + client.get_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        for v in versions
    )


def test_replaced_metadata_leaves_no_version_with_the_old(photos, tmp_path):
    first = photos.put("k.jpg", b"\xff\xd8\xffbytes", "image/jpeg", {"name": "Keanu Reeves", "place": "beach"})
    photos.put("other.jpg", b"\xff\xd8\xffother", "image/jpeg", {"name": "Ada"})
    replaced = photos.replace_metadata("k.jpg", first.etag, {"place": "beach"})
    assert replaced.etag == first.etag and replaced.metadata == {"place": "beach"}
    assert replaced.version != first.version  # a new version: its event finds the record to update
    assert photos.head("k.jpg") == replaced and photos.read("k.jpg") == b"\xff\xd8\xffbytes"
    kept = every_stored_byte(photos, tmp_path)
    assert b"Keanu" not in kept and b"Ada" in kept and kept.count(b"\xff\xd8\xffbytes") == 1


def test_metadata_is_replaced_only_over_the_bytes_named(photos):
    assert photos.replace_metadata("gone.jpg", "e", {}) is None
    stored = photos.put("k.jpg", b"\xff\xd8\xffone", "image/jpeg", {"name": "A"})
    assert photos.replace_metadata("k.jpg", "another-etag", {}) is None
    assert photos.head("k.jpg") == stored
