"""Image and face records in two DynamoDB tables.

images: `key` (the photo's key) -> {revision, etag, record, faceIds,
    pendingSince}. `record` is the image record the use cases read and
    write, kept as one map so that recording a new upload pending replaces
    it whole while `faceIds` (the faces indexed from the previous version,
    still in the collection) stays until indexing replaces them. `revision`
    makes every write a compare-and-set (a condition expression), so racing
    indexing runs and deletes cannot overwrite each other unseen.
    `faceIds` keeps the faces' order, and lets faces_of be one strongly
    consistent GetItem plus one BatchGetItem. `pendingSince` is set only
    while the image is pending: the sparse index `pending` (PENDING_INDEX)
    finds them for the scheduled re-drive without scanning the table.
faces: `FaceId` -> the face record (Rekognition's Face fields and
    imageKey), plus the photo's bucket and a copy of its metadata, so a
    search reads each match's label in the same BatchGetItem.

Numbers go in as Decimal (DynamoDB's only number type) and come out as int
or float, ready for JSON."""

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterable
from decimal import Decimal

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from chalicelib.aws import clients as aws
from chalicelib.core.errors import BadRequest, ServiceUnavailable
from chalicelib.core.ports import FaceKey, ImageState, Page, RecordStore
from chalicelib.core.records import PENDING

MAX_BATCH_GET = 100  # BatchGetItem's keys per request
MAX_BATCH_WRITE = 25  # BatchWriteItem's requests per call
MAX_SCAN_LIMIT = 1000
BATCH_ATTEMPTS = 8
# count_images scans (exact) at most this many 1 MB pages, then falls back
# to DescribeTable's ItemCount.
COUNT_SCAN_PAGES = 4
_FACE_EXTRAS = ("bucket", "metadata")
# The sparse index of the images table through which the re-drive finds
# pending images: only they carry PENDING_SINCE (scripts/aws_setup.py creates it).
PENDING_INDEX = "pending"
PENDING_SINCE = "pendingSince"
log = logging.getLogger("faceprint")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


class DynamoRecordStore(RecordStore):
    def __init__(
        self,
        client,
        images_table: str,
        faces_table: str,
        bucket: str,
        stage: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._images = images_table
        self._faces = faces_table
        self._bucket = bucket
        self._stage = stage
        self._sleep = sleep

    def get_image(self, key: str) -> dict | None:
        item = self._get(self._images, {"key": key})
        return _image(item) if item else None

    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        record = _record(image)
        revision = (expected_revision or 0) + 1
        pending = record.get("pendingSince") if record["status"] == PENDING else None
        update = "SET #record = :record, #etag = :etag, #revision = :revision"
        values = {":record": record, ":etag": record["etag"], ":revision": revision}
        if pending:
            update += ", #pending = :pending"
            values[":pending"] = pending
        else:
            update += " REMOVE #pending"
        if self._update_if(record["key"], update, values, expected_revision) is None:
            return None
        return {**record, "revision": revision}

    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int | None) -> list[str] | None:
        """Face items first, then the image item (the commit point, with its
        condition), then the faces it replaced. On a lost race the face
        items just written are removed again; a crash in between leaves
        face items no image lists, which `check` reports and repairs."""
        record = _record(image)
        key = record["key"]
        new_ids = [face["FaceId"] for face in faces]
        self._write_batch(
            self._faces,
            [
                {
                    "PutRequest": {
                        "Item": _item({**face, "imageKey": key, "bucket": self._bucket, "metadata": record["metadata"]})
                    }
                }
                for face in faces
            ],
        )
        update = "SET #record = :record, #etag = :etag, #revision = :revision, faceIds = :ids REMOVE #pending"
        values = {
            ":record": record,
            ":etag": record["etag"],
            ":revision": (expected_revision or 0) + 1,
            ":ids": new_ids,
        }
        old = self._update_if(key, update, values, expected_revision, return_old=True)
        if old is None:
            self._delete_faces(new_ids)
            return None
        replaced = [face_id for face_id in dict.fromkeys(old.get("faceIds", [])) if face_id not in set(new_ids)]
        self._delete_faces(replaced)
        return replaced

    def remove_image(self, key: str, expected_revision: int | None = None) -> list[str] | None:
        request = {"TableName": self._images, "Key": _item({"key": key}), "ReturnValues": "ALL_OLD"}
        if expected_revision is not None:
            request.update(_revision_condition(expected_revision))
        with self._translated(self._images):
            try:
                response = self._client.delete_item(**request)
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        removed = list(dict.fromkeys(_plain(response.get("Attributes", {})).get("faceIds", [])))
        self._delete_faces(removed)
        return removed

    def faces_of(self, key: str) -> list[dict]:
        ids = self._face_ids(key)
        found = self._batch_get(ids)
        return [_face_record(found[face_id]) for face_id in ids if face_id in found]

    def find_faces(self, face_ids: list[str]) -> dict[str, tuple[dict, dict]]:
        return {
            face_id: (_face_record(item), item.get("metadata", {}))
            for face_id, item in self._batch_get(face_ids).items()
        }

    def get_face(self, face_id: str) -> dict | None:
        item = self._get(self._faces, {"FaceId": face_id})
        return _face_record(item) if item else None

    def list_images(self, limit: int, token: str | None = None) -> Page:
        items, next_token = self._scan(self._images, limit, token, "key")
        return Page([_image(item) for item in items], next_token)

    def list_image_states(self, limit: int, token: str | None = None) -> Page:
        projection = {"#key": "key", "#record": "record", "#status": "status", "#etag": "etag", "#count": "faceCount"}
        items, next_token = self._scan(
            self._images, limit, token, "key", ("#key, #record.#etag, #record.#status, #record.#count", projection)
        )
        return Page([_image_state(item) for item in items], next_token)

    def list_face_keys(self, limit: int, token: str | None = None) -> Page:
        projection = {"#id": "FaceId", "#key": "imageKey"}
        items, next_token = self._scan(self._faces, limit, token, "FaceId", ("#id, #key", projection))
        return Page([FaceKey(item["FaceId"], item["imageKey"]) for item in items], next_token)

    def list_pending(self, older_than: str, limit: int) -> list[str]:
        """Scans the sparse `pending` index, which holds only pending images.
        A table made before that index existed (`make aws-setup` adds it) is
        scanned whole instead, with a warning."""
        request = {
            "TableName": self._images,
            "IndexName": PENDING_INDEX,
            "FilterExpression": "#pending < :cutoff",
            "ExpressionAttributeNames": {"#pending": PENDING_SINCE},
            "ExpressionAttributeValues": _item({":cutoff": older_than}),
        }
        try:
            return self._scan_keys(request, limit)
        except ClientError as e:
            if aws.error_code(e) != "ValidationException" or PENDING_INDEX not in str(e):
                raise
        log.warning("table %r has no %r index: scanning it whole; run `make aws-setup`", self._images, PENDING_INDEX)
        del request["IndexName"]
        return self._scan_keys(request, limit)

    def _scan_keys(self, request: dict, limit: int) -> list[str]:
        keys: list[str] = []
        with self._translated(self._images):
            while len(keys) < limit:
                response = self._client.scan(**request)
                keys += [_plain(item)["key"] for item in response.get("Items", [])]
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return keys[:limit]

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        items, next_token = self._scan(self._faces, limit, token, "FaceId")
        return Page([_face_record(item) for item in items], next_token)

    def delete_face(self, face_id: str) -> None:
        face = self._get(self._faces, {"FaceId": face_id})
        if face is None:
            return
        with self._translated(self._faces):
            self._client.delete_item(TableName=self._faces, Key=_item({"FaceId": face_id}))
        self._unlist_face(face["imageKey"], face_id)

    def count_images(self) -> int:
        """Exact for tables up to a few MB (a Scan with Select=COUNT of at most
        COUNT_SCAN_PAGES pages). Beyond that, DescribeTable's ItemCount, which
        DynamoDB refreshes only about every six hours: a full count on every
        GET /info would read the whole table each time."""
        counted, request = 0, {"TableName": self._images, "Select": "COUNT"}
        with self._translated(self._images):
            for _ in range(COUNT_SCAN_PAGES):
                response = self._client.scan(**request)
                counted += response["Count"]
                if "LastEvaluatedKey" not in response:
                    return counted
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            approximate = self._client.describe_table(TableName=self._images)["Table"].get("ItemCount", 0)
        return max(counted, approximate)

    def _update_if(
        self, key: str, update: str, values: dict, expected_revision: int | None, return_old: bool = False
    ) -> dict | None:
        """UpdateItem on the image if it is still at `expected_revision`
        (None: if there is no such image). Returns the item as it was (an
        empty dict for a new one), or None when the condition failed."""
        names = {"#record": "record", "#etag": "etag", "#revision": "revision", "#pending": PENDING_SINCE}
        request = {
            "TableName": self._images,
            "Key": _item({"key": key}),
            "UpdateExpression": update,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _item(values),
            "ReturnValues": "ALL_OLD" if return_old else "NONE",
        }
        condition = _revision_condition(expected_revision)
        request["ConditionExpression"] = condition["ConditionExpression"]
        request["ExpressionAttributeNames"].update(condition["ExpressionAttributeNames"])
        request["ExpressionAttributeValues"].update(condition.get("ExpressionAttributeValues", {}))
        with self._translated(self._images):
            try:
                response = self._client.update_item(**request)
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        return _plain(response.get("Attributes", {}))

    def _delete_faces(self, face_ids: list[str]) -> None:
        self._write_batch(self._faces, [{"DeleteRequest": {"Key": _item({"FaceId": i})}} for i in face_ids])

    def _face_ids(self, key: str) -> list[str]:
        item = self._get(self._images, {"key": key}, projection="faceIds")
        return item.get("faceIds", []) if item else []

    def _unlist_face(self, key: str, face_id: str) -> None:
        """Drop face_id from its image's faceIds and lower faceCount. The
        list is edited by index, guarded by a condition that the index still
        holds that id; a concurrent edit makes us read again."""
        for _ in range(BATCH_ATTEMPTS):
            ids = self._face_ids(key)
            if face_id not in ids:
                return
            index = ids.index(face_id)
            with self._translated(self._images):
                try:
                    self._client.update_item(
                        TableName=self._images,
                        Key=_item({"key": key}),
                        UpdateExpression=(
                            f"REMOVE faceIds[{index}] SET #record.faceCount = #record.faceCount - :one, "
                            "#revision = if_not_exists(#revision, :zero) + :one"
                        ),
                        ConditionExpression=f"faceIds[{index}] = :id",
                        ExpressionAttributeNames={"#record": "record", "#revision": "revision"},
                        ExpressionAttributeValues=_item({":one": 1, ":zero": 0, ":id": face_id}),
                    )
                    return
                except ClientError as e:
                    if aws.error_code(e) != "ConditionalCheckFailedException":
                        raise
        raise ServiceUnavailable(f"Image {key!r} kept changing while a face was being removed; retry.")

    def _get(self, table: str, key: dict, projection: str | None = None) -> dict | None:
        request = {"TableName": table, "Key": _item(key), "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
        with self._translated(table):
            response = self._client.get_item(**request)
        return _plain(response["Item"]) if "Item" in response else None

    def _batch_get(self, face_ids: Iterable[str]) -> dict[str, dict]:
        """Face items by id: BatchGetItem in chunks of 100, retrying
        UnprocessedKeys with exponential backoff."""
        ids = list(dict.fromkeys(face_ids))
        found: dict[str, dict] = {}
        for start in range(0, len(ids), MAX_BATCH_GET):
            pending = {
                self._faces: {
                    "Keys": [_item({"FaceId": i}) for i in ids[start : start + MAX_BATCH_GET]],
                    "ConsistentRead": True,
                }
            }
            for attempt in range(BATCH_ATTEMPTS):
                with self._translated(self._faces):
                    response = self._client.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(self._faces, []):
                    item = _plain(raw)
                    found[item["FaceId"]] = item
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise ServiceUnavailable(f"DynamoDB table {self._faces!r} kept deferring reads; retry.")
        return found

    def _write_batch(self, table: str, requests: list[dict]) -> None:
        """BatchWriteItem in chunks of 25, retrying UnprocessedItems."""
        for start in range(0, len(requests), MAX_BATCH_WRITE):
            pending = {table: requests[start : start + MAX_BATCH_WRITE]}
            for attempt in range(BATCH_ATTEMPTS):
                with self._translated(table):
                    response = self._client.batch_write_item(RequestItems=pending)
                pending = response.get("UnprocessedItems") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise ServiceUnavailable(f"DynamoDB table {table!r} kept deferring writes; retry.")

    def _scan(
        self, table: str, limit: int, token: str | None, key_name: str, projection: tuple[str, dict] | None = None
    ) -> tuple[list[dict], str | None]:
        """One page of a Scan; `projection`: (ProjectionExpression, its names)."""
        request = {"TableName": table, "Limit": max(1, min(limit, MAX_SCAN_LIMIT))}
        if projection:
            request["ProjectionExpression"], request["ExpressionAttributeNames"] = projection
        if token:
            request["ExclusiveStartKey"] = _decode_token(token, key_name)
        with self._translated(table):
            response = self._client.scan(**request)
        last = response.get("LastEvaluatedKey")
        return [_plain(item) for item in response.get("Items", [])], _encode_token(last) if last else None

    def _backoff(self, attempt: int) -> None:
        self._sleep(min(0.05 * 2**attempt, 2.0))

    def _translated(self, table: str):
        return aws.translated(f"DynamoDB table {table!r}", self._stage)


def _revision_condition(expected: int | None) -> dict:
    """The condition that the image item is at revision `expected`. Items
    written before revisions existed count as revision 0."""
    if expected is None:
        return {"ConditionExpression": "attribute_not_exists(#key)", "ExpressionAttributeNames": {"#key": "key"}}
    if expected == 0:
        return {
            "ConditionExpression": "attribute_exists(#key) AND attribute_not_exists(#revision)",
            "ExpressionAttributeNames": {"#key": "key", "#revision": "revision"},
        }
    return {
        "ConditionExpression": "#revision = :expected",
        "ExpressionAttributeNames": {"#revision": "revision"},
        "ExpressionAttributeValues": _item({":expected": expected}),
    }


def _record(image: dict) -> dict:
    return {name: value for name, value in image.items() if name != "revision"}


def _image(item: dict) -> dict:
    return {**item["record"], "revision": item.get("revision", 0)}


def _image_state(item: dict) -> ImageState:
    record = item["record"]
    return ImageState(item["key"], record["etag"], record["status"], record["faceCount"])


def _face_record(item: dict) -> dict:
    """The face as the service knows it: Rekognition's Face fields and
    imageKey, without the copies kept for searches."""
    return {name: value for name, value in item.items() if name not in _FACE_EXTRAS}


def _item(values: dict) -> dict:
    return {name: _serializer.serialize(_to_dynamo(value)) for name, value in values.items()}


def _plain(item: dict) -> dict:
    return {name: _from_dynamo(_deserializer.deserialize(value)) for name, value in item.items()}


def _to_dynamo(value):
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value):
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def _encode_token(last_evaluated_key: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(last_evaluated_key).encode()).decode().rstrip("=")


def _decode_token(token: str, key_name: str) -> dict:
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError) as e:
        raise BadRequest("The `next` token is not valid: pass back the one a listing returned.") from e
    if not (isinstance(key, dict) and set(key) == {key_name} and set(key[key_name]) == {"S"}):
        raise BadRequest("The `next` token is not valid: pass back the one a listing returned.")
    return key
