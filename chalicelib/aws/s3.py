"""Photos in a private S3 bucket, with their `x-amz-meta-*` metadata.

Storing a photo here is what triggers its indexing on AWS: the bucket's
ObjectCreated notification (set up by `chalice deploy` from app.py's
`@app.on_s3_event`) invokes the handler, for photos put by the API or by
any other means."""

from botocore.exceptions import ClientError

from chalicelib.aws import clients as aws
from chalicelib.core.errors import NotFound
from chalicelib.core.limits import RESERVED_METADATA
from chalicelib.core.ports import Page, PhotoStore, StoredPhoto

MAX_LIST_KEYS = 1000  # ListObjectsV2's MaxKeys limit
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})


class S3PhotoStore(PhotoStore):
    def __init__(self, client, bucket: str, stage: str = "") -> None:
        self._client = client
        self._bucket = bucket
        self._stage = stage
        self._resource = f"S3 bucket {bucket!r}"

    def put(self, photo: StoredPhoto, data: bytes) -> StoredPhoto:
        metadata = dict(photo.metadata)
        if photo.original_content_type and photo.original_content_type != photo.content_type:
            metadata[RESERVED_METADATA] = photo.original_content_type  # a converted photo's original type
        with aws.translated(self._resource, self._stage):
            response = self._client.put_object(
                Bucket=self._bucket, Key=photo.key, Body=data, ContentType=photo.content_type, Metadata=metadata
            )
        return StoredPhoto(
            photo.key,
            _etag(response["ETag"]),
            len(data),
            photo.content_type,
            dict(photo.metadata),
            photo.original_content_type,
        )

    def head(self, key: str) -> StoredPhoto | None:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.head_object(Bucket=self._bucket, Key=key)
            except ClientError as e:
                if aws.error_code(e) in _MISSING:
                    return None
                raise
        metadata = dict(response.get("Metadata", {}))
        original = metadata.pop(RESERVED_METADATA, "")
        return StoredPhoto(
            key, _etag(response["ETag"]), response["ContentLength"], response.get("ContentType", ""), metadata, original
        )

    def read(self, key: str) -> bytes:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.get_object(Bucket=self._bucket, Key=key)
            except ClientError as e:
                if aws.error_code(e) in _MISSING:
                    raise NotFound(f"No photo named {key!r}.") from e
                raise
            return response["Body"].read()

    def delete(self, key: str) -> None:
        # DeleteObject succeeds for a key that is already gone.
        with aws.translated(self._resource, self._stage):
            self._client.delete_object(Bucket=self._bucket, Key=key)

    def list(self, limit: int, token: str | None = None) -> Page:
        """Keys, sizes and etags (ListObjectsV2 returns no content type or
        metadata: `head` has them)."""
        request = {"Bucket": self._bucket, "MaxKeys": max(1, min(limit, MAX_LIST_KEYS))}
        if token:
            request["ContinuationToken"] = token
        with aws.translated(self._resource, self._stage):
            response = self._client.list_objects_v2(**request)
        items = [StoredPhoto(obj["Key"], _etag(obj["ETag"]), obj["Size"], "") for obj in response.get("Contents", [])]
        return Page(items, response.get("NextContinuationToken") if response.get("IsTruncated") else None)


def _etag(value: str) -> str:
    return value.strip('"')
