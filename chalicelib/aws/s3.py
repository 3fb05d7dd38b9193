"""Photos in a private S3 bucket, with their `x-amz-meta-*` metadata.

Storing a photo here is what triggers its indexing on AWS: the bucket
sends its ObjectCreated (and ObjectRemoved) events to the indexing queue
(`make aws-setup`), whose workers index photos put by the API or by any
other means. The bucket is versioned (`make aws-setup`), so an indexing
run reads exactly the version its event names."""

from dataclasses import replace
from datetime import UTC, datetime

from botocore.exceptions import ClientError

from chalicelib.aws import clients as aws
from chalicelib.core.errors import NotFound
from chalicelib.core.limits import RESERVED_METADATA
from chalicelib.core.ports import ListedPhoto, Page, PhotoStore, StoredPhoto

MAX_LIST_KEYS = 1000  # ListObjectsV2's MaxKeys limit, and DeleteObjects' keys per call
DOWNLOAD_URL_SECONDS = 300
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3PhotoStore(PhotoStore):
    def __init__(self, client, bucket: str, stage: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._stage = stage
        self._resource = f"S3 bucket {bucket!r}"

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], original_content_type: str = ""
    ) -> StoredPhoto:
        stored_metadata = dict(metadata)
        if original_content_type and original_content_type != content_type:
            stored_metadata[RESERVED_METADATA] = original_content_type  # a converted photo's original type
        with aws.translated(self._resource, self._stage):
            response = self._client.put_object(
                Bucket=self._bucket, Key=key, Body=data, ContentType=content_type, Metadata=stored_metadata
            )
        return StoredPhoto(
            key,
            _etag(response["ETag"]),
            len(data),
            content_type,
            dict(metadata),
            response.get("VersionId"),
            original_content_type=original_content_type,
        )

    def head(self, key: str) -> StoredPhoto | None:
        """None when the bucket holds no such photo. S3 answers HEAD with a
        bare 404 (no body) for a missing bucket as for a missing key: then
        HeadBucket tells them apart, and a missing bucket is a
        ConfigurationError, never a photo that is gone (whose records
        indexing would remove)."""
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.head_object(Bucket=self._bucket, Key=key)
            except ClientError as e:
                if aws.error_code(e) in _MISSING:
                    self._require_bucket()
                    return None
                raise
        metadata = dict(response.get("Metadata", {}))
        original = metadata.pop(RESERVED_METADATA, "")
        return StoredPhoto(
            key,
            _etag(response["ETag"]),
            response["ContentLength"],
            response.get("ContentType", ""),
            metadata,
            response.get("VersionId"),
            original_content_type=original,
            stored_at=_iso(response.get("LastModified")),
        )

    def _require_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self._bucket)
        except ClientError as e:
            if aws.error_code(e) in _MISSING:
                e.response["Error"]["Code"] = "NoSuchBucket"  # what the bare 404 meant: translated says so
            raise

    def read(self, key: str) -> bytes:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.get_object(Bucket=self._bucket, Key=key)
            except ClientError as e:
                if aws.error_code(e) in _MISSING:
                    raise NotFound(f"No photo named {key!r}.") from e
                raise
            return response["Body"].read()

    def download_url(self, key: str) -> str:
        """A presigned GET, so photos of any size skip Lambda's 6 MB reply limit."""
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=DOWNLOAD_URL_SECONDS
        )

    def replace_metadata(self, key: str, etag: str, metadata: dict[str, str]) -> StoredPhoto | None:
        """CopyObject onto itself (if it still holds `etag`) with the new
        metadata: a new version, the same bytes (a photo put in one part, as
        the API puts them, keeps its etag); then every other version goes,
        each of which carries the old metadata."""
        current = self.head(key)
        if current is None or current.etag != etag:
            return None
        stored_metadata = dict(metadata)
        if current.original_content_type:
            stored_metadata[RESERVED_METADATA] = current.original_content_type
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.copy_object(
                    Bucket=self._bucket,
                    Key=key,
                    CopySource={"Bucket": self._bucket, "Key": key, **_version(current.version_id)},
                    CopySourceIfMatch=f'"{etag}"',
                    ContentType=current.content_type,
                    Metadata=stored_metadata,
                    MetadataDirective="REPLACE",
                )
            except ClientError as e:
                if aws.error_code(e) in _MISSING | {"PreconditionFailed"}:
                    return None
                raise
        version_id = response.get("VersionId")
        self.delete(key, keep=version_id)
        copied = response.get("CopyObjectResult", {})
        return replace(
            current,
            etag=_etag(copied.get("ETag", f'"{etag}"')),
            metadata=dict(metadata),
            version_id=version_id,
            stored_at=_iso(copied.get("LastModified")),
        )

    def delete(self, key: str, keep: str | None = None) -> None:
        """Every version of the key (but `keep`, a version id), and its
        delete markers: a deleted photo is gone, not hidden (an unversioned
        bucket lists its one object as version "null")."""
        request = {"Bucket": self._bucket, "Prefix": key}
        with aws.translated(self._resource, self._stage):
            while True:
                response = self._client.list_object_versions(**request)
                doomed = [
                    {"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in response.get("Versions", []) + response.get("DeleteMarkers", [])
                    if v["Key"] == key and (keep is None or v["VersionId"] != keep)
                ]
                if doomed:
                    self._client.delete_objects(Bucket=self._bucket, Delete={"Objects": doomed, "Quiet": True})
                if not response.get("IsTruncated"):
                    return
                request["KeyMarker"] = response["NextKeyMarker"]
                request["VersionIdMarker"] = response["NextVersionIdMarker"]

    def list(self, limit: int, token: str | None = None) -> Page:
        """Keys, sizes and etags (ListObjectsV2 returns no content type or
        metadata: `head` has them)."""
        request = {"Bucket": self._bucket, "MaxKeys": max(1, min(limit, MAX_LIST_KEYS))}
        if token:
            request["ContinuationToken"] = token
        with aws.translated(self._resource, self._stage):
            response = self._client.list_objects_v2(**request)
        items = [
            ListedPhoto(obj["Key"], _etag(obj["ETag"]), obj["Size"], _iso(obj.get("LastModified")))
            for obj in response.get("Contents", [])
        ]
        return Page(items, response.get("NextContinuationToken") if response.get("IsTruncated") else None)


def _version(version_id: str | None) -> dict:
    return {"VersionId": version_id} if version_id else {}


def _etag(value: str) -> str:
    return value.strip('"')


def _iso(moment: datetime | None) -> str | None:
    """S3's LastModified (to the second) as the records write times."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None
