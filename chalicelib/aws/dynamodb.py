"""Image, face and person records in three DynamoDB tables.

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
    imageKey). `UserId` names the face's person, when it has one. The
    labels' metadata lives on the image record only (one place): a search
    reads its matches' faces, then their images' metadata, in two batches.
people: `personId` -> {name, createdAt, updatedAt, faceIds}. `faceIds` is
    a string set of the person's faces (a Rekognition User holds at most
    100): GET /faces?person= is one strongly consistent GetItem plus one
    BatchGetItem, where a global secondary index on the faces' UserId
    could only be read eventually consistent (a face just associated could
    be missing). A face's UserId and its person's set are written in one
    TransactWriteItems; removing face items takes them out of their
    person's set first. The item SUGGESTIONS_KEY (no personId can hold a
    `#`) keeps the last suggested people, compressed.

Numbers go in as Decimal (DynamoDB's only number type) and come out as int
or float, ready for JSON."""

import base64
import binascii
import json
import logging
import time
import zlib
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
_FACE_EXTRAS = ("bucket", "metadata")  # copies that face items written before carried
# The sparse index of the images table through which the re-drive finds
# pending images: only they carry PENDING_SINCE (scripts/aws_setup.py creates it).
PENDING_INDEX = "pending"
PENDING_SINCE = "pendingSince"
# The item of the people table that holds the suggested people, and the
# most of its compressed JSON kept (an item holds at most 400 KB).
SUGGESTIONS_KEY = "#suggestions"
MAX_SUGGESTIONS_BYTES = 350_000
MAX_TRANSACT_ITEMS = 100  # TransactWriteItems' actions per call
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
        people_table: str,
        stage: str = "",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._images = images_table
        self._faces = faces_table
        self._people = people_table
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
            [{"PutRequest": {"Item": _item({**face, "imageKey": key})}} for face in faces],
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
            # Take back the items this call wrote, but not the faces the
            # winner lists (the same faces again: a refresh of the same bytes).
            listed = set(self._face_ids(key))
            self._delete_faces([face_id for face_id in new_ids if face_id not in listed])
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
        """Faces whose image record is gone (deleted meanwhile) are left out."""
        faces = self._batch_get(face_ids)
        images = self._batch_get(
            {item["imageKey"] for item in faces.values()}, self._images, "key", projection="#key, #record.metadata"
        )
        return {
            face_id: (_face_record(item), images[item["imageKey"]].get("record", {}).get("metadata", {}))
            for face_id, item in faces.items()
            if item["imageKey"] in images
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
        self._unlink_from_people([face])
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

    # People.

    def get_person(self, person_id: str) -> dict | None:
        item = self._get(self._people, {"personId": person_id})
        return _person(item) if item and person_id != SUGGESTIONS_KEY else None

    def create_person(self, person: dict) -> dict | None:
        item = {name: person[name] for name in ("personId", "name", "createdAt", "updatedAt")}
        with self._translated(self._people):
            try:
                self._client.put_item(
                    TableName=self._people,
                    Item=_item(item),
                    ConditionExpression="attribute_not_exists(personId)",
                )
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        return _person(item)

    def rename_person(self, person_id: str, name: str, updated_at: str) -> dict | None:
        item = self._update_person(
            person_id, "SET #name = :name, updatedAt = :at", {":name": name, ":at": updated_at}, {"#name": "name"}
        )
        return _person(item) if item is not None else None

    def remove_person(self, person_id: str) -> list[str] | None:
        with self._translated(self._people):
            try:
                response = self._client.delete_item(
                    TableName=self._people,
                    Key=_item({"personId": person_id}),
                    ConditionExpression="attribute_exists(personId)",
                    ReturnValues="ALL_OLD",
                )
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        face_ids = sorted(_plain(response.get("Attributes", {})).get("faceIds", set()))
        cleared = self._transact([(_clear_owner(self._faces, face_id, person_id), face_id) for face_id in face_ids])
        return [face_id for face_id in face_ids if face_id in cleared]

    def list_people(self, limit: int, token: str | None = None) -> Page:
        items, next_token = self._scan(self._people, limit, token, "personId")
        return Page([_person(item) for item in items if item["personId"] != SUGGESTIONS_KEY], next_token)

    def find_people(self, person_ids: list[str]) -> dict[str, dict]:
        ids = [person_id for person_id in person_ids if person_id != SUGGESTIONS_KEY]
        return {person_id: _person(item) for person_id, item in self._batch_get(ids, self._people, "personId").items()}

    def associate_faces(self, person_id: str, face_ids: list[str]) -> list[str] | None:
        """Per chunk of faces, one TransactWriteItems: each face item gets
        UserId, the person's set gains them (and a previous person's loses
        them). A face item gone meanwhile is left out and the rest retried."""
        faces = self._batch_get(face_ids)
        done: list[str] = []
        ids = [face_id for face_id in dict.fromkeys(face_ids) if face_id in faces]
        for start in range(0, len(ids), MAX_TRANSACT_ITEMS // 2 - 1):
            chunk = ids[start : start + MAX_TRANSACT_ITEMS // 2 - 1]
            while chunk:
                actions = [(_set_owner(self._faces, face_id, person_id), face_id) for face_id in chunk]
                previous: dict[str, list[str]] = {}
                for face_id in chunk:
                    owner = faces[face_id].get("UserId")
                    if owner and owner != person_id:
                        previous.setdefault(owner, []).append(face_id)
                actions += [
                    (_person_update(self._people, owner, "DELETE faceIds :ids", {":ids": set(lost)}), None)
                    for owner, lost in previous.items()
                ]
                person = _person_update(self._people, person_id, "ADD faceIds :ids", {":ids": set(chunk)})
                failed = self._transact_once([*actions, (person, "person")])
                if failed is None:
                    done += chunk
                    break
                if "person" in failed:
                    return None  # deleted meanwhile
                chunk = [face_id for face_id in chunk if face_id not in failed]
        return done

    def disassociate_faces(self, person_id: str, face_ids: list[str]) -> list[str]:
        cleared = self._transact(
            [(_clear_owner(self._faces, face_id, person_id), face_id) for face_id in dict.fromkeys(face_ids)]
        )
        if cleared:
            self._update_person(person_id, "DELETE faceIds :ids", {":ids": set(cleared)})
        return [face_id for face_id in dict.fromkeys(face_ids) if face_id in cleared]

    def faces_of_person(self, person_id: str) -> list[dict]:
        item = self._get(self._people, {"personId": person_id}, projection="faceIds")
        ids = sorted((item or {}).get("faceIds", set()))
        found = self._batch_get(ids)
        faces = [_face_record(found[i]) for i in ids if i in found and found[i].get("UserId") == person_id]
        return sorted(faces, key=lambda face: (face["imageKey"], face["FaceId"]))

    def save_suggestions(self, suggestions: dict) -> None:
        """One item, its JSON compressed; when even that is too large, the
        smallest groups are left out (and `truncated` says so)."""
        kept = dict(suggestions)
        while True:
            blob = zlib.compress(json.dumps(kept).encode(), 9)
            if len(blob) <= MAX_SUGGESTIONS_BYTES or not kept["suggestions"]:
                break
            kept = {**kept, "suggestions": kept["suggestions"][: len(kept["suggestions"]) * 3 // 4], "truncated": True}
        with self._translated(self._people):
            self._client.put_item(
                TableName=self._people, Item={"personId": {"S": SUGGESTIONS_KEY}, "suggestions": {"B": blob}}
            )

    def get_suggestions(self) -> dict | None:
        with self._translated(self._people):
            response = self._client.get_item(
                TableName=self._people, Key={"personId": {"S": SUGGESTIONS_KEY}}, ConsistentRead=True
            )
        if "Item" not in response:
            return None
        return json.loads(zlib.decompress(response["Item"]["suggestions"]["B"]))

    def _update_person(self, person_id: str, update: str, values: dict, names: dict | None = None) -> dict | None:
        """UpdateItem on an existing person; the item after, or None when
        there is no such person."""
        request = _person_update(self._people, person_id, update, values, names)["Update"]
        with self._translated(self._people):
            try:
                response = self._client.update_item(**request, ReturnValues="ALL_NEW")
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        return _plain(response.get("Attributes", {}))

    def _transact(self, actions: list[tuple[dict, str]]) -> set[str]:
        """Run the (action, name) pairs, up to 100 per TransactWriteItems;
        those whose condition fails are left out and the rest run again.
        Returns the names of those done."""
        done: set[str] = set()
        for start in range(0, len(actions), MAX_TRANSACT_ITEMS):
            chunk = actions[start : start + MAX_TRANSACT_ITEMS]
            while chunk:
                failed = self._transact_once(chunk)
                if failed is None:
                    done |= {name for _, name in chunk}
                    break
                chunk = [(action, name) for action, name in chunk if name not in failed]
        return done

    def _transact_once(self, actions: list[tuple[dict, str | None]]) -> set[str] | None:
        """One TransactWriteItems: None when it committed, else the names
        of the actions whose condition failed (nothing was written)."""
        with self._translated(self._faces):
            try:
                self._client.transact_write_items(TransactItems=[action for action, _ in actions])
                return None
            except ClientError as e:
                if aws.error_code(e) != "TransactionCanceledException":
                    raise
                reasons = e.response.get("CancellationReasons", [])
        failed = {
            name
            for (_, name), reason in zip(actions, reasons, strict=False)
            if reason.get("Code") == "ConditionalCheckFailed"
        }
        if not failed:  # a conflict with another transaction: try again
            raise ServiceUnavailable("DynamoDB cancelled a transaction on a conflict; retry.")
        return failed

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
        """Delete face items, first taking them out of their people's sets
        (one BatchGetItem per 100 faces to learn whose they are)."""
        if not face_ids:
            return
        self._unlink_from_people(list(self._batch_get(face_ids).values()))
        self._write_batch(self._faces, [{"DeleteRequest": {"Key": _item({"FaceId": i})}} for i in face_ids])

    def _unlink_from_people(self, faces: list[dict]) -> None:
        owners: dict[str, list[str]] = {}
        for face in faces:
            if face.get("UserId"):
                owners.setdefault(face["UserId"], []).append(face["FaceId"])
        for person_id, ids in owners.items():
            self._update_person(person_id, "DELETE faceIds :ids", {":ids": set(ids)})

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

    def _batch_get(
        self, ids: Iterable[str], table: str | None = None, key: str = "FaceId", projection: str | None = None
    ) -> dict[str, dict]:
        """Items by id (face items unless told; only the `projection`'s
        attributes, #key and #record naming `key` and `record`, when one is
        given): BatchGetItem in chunks of 100, retrying UnprocessedKeys with
        exponential backoff."""
        table = table or self._faces
        ids = list(dict.fromkeys(ids))
        found: dict[str, dict] = {}
        for start in range(0, len(ids), MAX_BATCH_GET):
            request = {"Keys": [_item({key: i}) for i in ids[start : start + MAX_BATCH_GET]], "ConsistentRead": True}
            if projection:
                request["ProjectionExpression"] = projection
                request["ExpressionAttributeNames"] = {"#key": key, "#record": "record"}
            pending = {table: request}
            for attempt in range(BATCH_ATTEMPTS):
                with self._translated(table):
                    response = self._client.batch_get_item(RequestItems=pending)
                for raw in response.get("Responses", {}).get(table, []):
                    item = _plain(raw)
                    found[item[key]] = item
                pending = response.get("UnprocessedKeys") or {}
                if not pending:
                    break
                self._backoff(attempt)
            else:
                raise ServiceUnavailable(f"DynamoDB table {table!r} kept deferring reads; retry.")
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


def _person(item: dict) -> dict:
    return {
        "personId": item["personId"],
        "name": item["name"],
        "faceCount": len(item.get("faceIds", ())),
        "createdAt": item["createdAt"],
        "updatedAt": item["updatedAt"],
    }


def _person_update(table: str, person_id: str, update: str, values: dict, names: dict | None = None) -> dict:
    """A transaction's Update of an existing person item."""
    request = {
        "TableName": table,
        "Key": _item({"personId": person_id}),
        "UpdateExpression": update,
        "ConditionExpression": "attribute_exists(personId)",
        "ExpressionAttributeValues": _item(values),
    }
    if names:
        request["ExpressionAttributeNames"] = names
    return {"Update": request}


def _set_owner(table: str, face_id: str, person_id: str) -> dict:
    return {
        "Update": {
            "TableName": table,
            "Key": _item({"FaceId": face_id}),
            "UpdateExpression": "SET UserId = :person",
            "ConditionExpression": "attribute_exists(FaceId)",
            "ExpressionAttributeValues": _item({":person": person_id}),
        }
    }


def _clear_owner(table: str, face_id: str, person_id: str) -> dict:
    return {
        "Update": {
            "TableName": table,
            "Key": _item({"FaceId": face_id}),
            "UpdateExpression": "REMOVE UserId",
            "ConditionExpression": "UserId = :person",
            "ExpressionAttributeValues": _item({":person": person_id}),
        }
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
    if isinstance(value, set):
        return {_from_dynamo(v) for v in value}
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
