"""Image, face and person records in three DynamoDB tables.

images: `key` (the photo's key) -> {revision, etag, record, faceIds,
    pendingSince}. `record` is the image record the use cases read and
    write, kept as one map so that recording a new upload pending replaces
    it whole while `faceIds` (the faces indexed from the previous version,
    still in the collection) stays until indexing replaces them. `revision`
    makes every write a compare-and-set (a condition expression), so racing
    indexing runs and deletes cannot overwrite each other unseen.
    `faceIds` keeps the faces' order, and lets faces_of be one strongly
    consistent GetItem plus one BatchGetItem. `pendingSince` (when the
    re-drive owes the record a visit: records.redrive_due) and `dueShard`
    are set only while it owes one: the sparse index `due` (DUE_INDEX),
    keyed by the shard and sorted by that time, gives the re-drive the
    longest due first a page at a time, and counts them, without reading
    the rest (DUE_SHARDS shards spread its writes).
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
import heapq
import itertools
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
from chalicelib.core.ports import Committed, FaceKey, ImageState, Page, RecordStore
from chalicelib.core.records import next_revision, redrive_due

MAX_BATCH_GET = 100  # BatchGetItem's keys per request
MAX_BATCH_WRITE = 25  # BatchWriteItem's requests per call
MAX_SCAN_LIMIT = 1000
BATCH_ATTEMPTS = 8
# count_images scans (exact) at most this many 1 MB pages, then falls back
# to DescribeTable's ItemCount.
COUNT_SCAN_PAGES = 4
_FACE_EXTRAS = ("bucket", "metadata")  # copies that face items written before carried
# The sparse index of the images table through which the re-drive finds
# the records it owes a visit: only they carry PENDING_SINCE and DUE_SHARD
# (chalicelib/ops/aws_setup.py creates it). A table made before it has the older
# index PENDING_INDEX (keyed by the time alone), which is read whole.
DUE_INDEX = "due"
DUE_SHARD = "dueShard"
DUE_SHARDS = 4
PENDING_INDEX = "pending"
PENDING_SINCE = "pendingSince"
QUERY_PAGE = 1000
# The item of the people table that holds the suggested people, and the
# most of its compressed JSON kept (an item holds at most 400 KB).
SUGGESTIONS_KEY = "#suggestions"
# Items of the people table that are no person start with this (no person
# id can): the suggestions, and the stage's shared items (aws/state.py).
RESERVED_PREFIX = "#"
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
        revision = next_revision(expected_revision)
        update, values = _with_due("SET #record = :record, #etag = :etag, #revision = :revision", record)
        values.update({":record": record, ":etag": record["etag"], ":revision": revision})
        if self._update_if(record["key"], update, values, expected_revision) is None:
            return None
        return {**record, "revision": revision}

    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int | None) -> Committed | None:
        """Face items first, then the image item (the commit point, with its
        condition), then the faces it replaced. When the image's write does
        not happen (a lost race, or an error) the face items just written
        are removed again; a crash in between leaves face items no image
        lists: no read gives them, and `check` reports and repairs them."""
        record = _record(image)
        key = record["key"]
        new_ids = [face["FaceId"] for face in faces]
        owners = self._batch_get(new_ids)  # the same faces again (a refresh) keep their person
        self._write_batch(
            self._faces,
            [
                {"PutRequest": {"Item": _item(_with_owner({**face, "imageKey": key}, owners.get(face["FaceId"])))}}
                for face in faces
            ],
        )
        revision = next_revision(expected_revision)
        update, values = _with_due(
            "SET #record = :record, #etag = :etag, #revision = :revision, faceIds = :ids", record
        )
        values.update({":record": record, ":etag": record["etag"], ":revision": revision, ":ids": new_ids})
        try:
            old = self._update_if(key, update, values, expected_revision, return_old=True)
        except Exception:
            self._take_back(key, new_ids)
            raise
        if old is None:
            self._take_back(key, new_ids)
            return None
        replaced = [face_id for face_id in dict.fromkeys(old.get("faceIds", [])) if face_id not in set(new_ids)]
        return Committed(
            {**record, "revision": revision}, [_face_record(item) for item in self._delete_faces(replaced)]
        )

    def _take_back(self, key: str, new_ids: list[str]) -> None:
        """Remove the face items a commit wrote, but not the faces the image
        lists (the same faces again: a refresh of the same bytes)."""
        listed = set(self._face_ids(key))
        self._delete_faces([face_id for face_id in new_ids if face_id not in listed])

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
        """Faces whose image record is gone (deleted meanwhile), or does not
        list them (a commit that did not happen), are left out."""
        faces = self._batch_get(face_ids)
        images = self._batch_get(
            {item["imageKey"] for item in faces.values()},
            self._images,
            "key",
            projection="#key, #record.metadata, faceIds",
        )
        return {
            face_id: (_face_record(item), images[item["imageKey"]].get("record", {}).get("metadata", {}))
            for face_id, item in faces.items()
            if face_id in images.get(item["imageKey"], {}).get("faceIds", [])
        }

    def get_images(self, keys: list[str]) -> dict[str, dict]:
        """BatchGetItem, 100 keys a request."""
        return {key: _image(item) for key, item in self._batch_get(keys, self._images, "key").items()}

    def existing_faces(self, face_ids: list[str]) -> set[str]:
        """BatchGetItem of the face items' keys alone."""
        return set(self._batch_get(face_ids, projection="#key"))

    def get_face(self, face_id: str) -> dict | None:
        item = self._get(self._faces, {"FaceId": face_id})
        if item is None or face_id not in self._face_ids(item["imageKey"]):
            return None
        return _face_record(item)

    def list_images(self, limit: int, token: str | None = None) -> Page:
        items, next_token = self._scan(self._images, limit, token, "key")
        return Page([_image(item) for item in items], next_token)

    def list_image_states(self, limit: int, token: str | None = None) -> Page:
        projection = {
            "#key": "key",
            "#record": "record",
            "#status": "status",
            "#etag": "etag",
            "#count": "faceCount",
            "#uploaded": "uploadedAt",
        }
        attributes = "#key, #record.#etag, #record.#status, #record.#count, #record.#uploaded"
        items, next_token = self._scan(self._images, limit, token, "key", (attributes, projection))
        return Page([_image_state(item) for item in items], next_token)

    def list_face_keys(self, limit: int, token: str | None = None) -> Page:
        projection = {"#id": "FaceId", "#key": "imageKey", "#user": "UserId"}
        items, next_token = self._scan(self._faces, limit, token, "FaceId", ("#id, #key, #user", projection))
        return Page([FaceKey(item["FaceId"], item["imageKey"], item.get("UserId")) for item in items], next_token)

    def list_pending(self, older_than: str, limit: int) -> list[str]:
        """The `due` index, one Query per shard in due order, a page at a
        time, merged: reads about `limit` items, whatever the backlog. A
        table made before that index (`make aws-setup` adds it) is read
        through the older one, whole, with a warning."""
        if limit <= 0:
            return []
        try:
            shards = [self._due_keys(shard, older_than, limit) for shard in range(DUE_SHARDS)]
            return [key for _, key in itertools.islice(heapq.merge(*shards), limit)]
        except _NoDueIndex:
            return self._list_pending_by_scan(older_than, limit)

    def count_pending(self, older_than: str, most: int) -> int:
        """Counted by the `due` index (Select=COUNT: read units for at most
        `most` small index items a shard, nothing held)."""
        counted = 0
        try:
            for shard in range(DUE_SHARDS):
                request = self._due_query(shard, older_than, most - counted)
                request["Select"] = "COUNT"
                while counted < most:
                    response = self._query(request)
                    counted += response.get("Count", 0)
                    if "LastEvaluatedKey" not in response:
                        break
                    request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
                    request["Limit"] = max(1, most - counted)
        except _NoDueIndex:
            return len(self._list_pending_by_scan(older_than, most))
        return min(counted, most)

    def _due_keys(self, shard: int, older_than: str, limit: int):
        """(due, key) of one shard, in due order, fetched a page at a time
        as they are consumed (the first page at once: a missing index shows)."""
        request = self._due_query(shard, older_than, min(limit, QUERY_PAGE))
        response = self._query(request)

        def pages():
            nonlocal response
            while True:
                yield from ((item[PENDING_SINCE], item["key"]) for item in map(_plain, response.get("Items", [])))
                if "LastEvaluatedKey" not in response:
                    return
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
                response = self._query(request)

        return pages()

    def _due_query(self, shard: int, older_than: str, limit: int) -> dict:
        return {
            "TableName": self._images,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "#shard = :shard AND #pending < :cutoff",
            "ExpressionAttributeNames": {"#shard": DUE_SHARD, "#pending": PENDING_SINCE},
            "ExpressionAttributeValues": _item({":shard": str(shard), ":cutoff": older_than}),
            "ScanIndexForward": True,
            "Limit": max(1, limit),
        }

    def _query(self, request: dict) -> dict:
        with self._translated(self._images):
            try:
                return self._client.query(**request)
            except ClientError as e:
                # DynamoDB: ValidationException "The table does not have the specified index"
                # (moto says ResourceNotFoundException "Invalid index").
                missing = aws.error_code(e) in ("ValidationException", "ResourceNotFoundException")
                if missing and "index" in str(e).lower() and DUE_INDEX in str(e):
                    raise _NoDueIndex from e
                raise

    def _list_pending_by_scan(self, older_than: str, limit: int) -> list[str]:
        """Before the `due` index: the older `pending` index (or else the
        table) read whole, the longest due first."""
        log.warning("table %r has no %r index: reading every due record; run `make aws-setup`", self._images, DUE_INDEX)
        request = {
            "TableName": self._images,
            "IndexName": PENDING_INDEX,
            "FilterExpression": "#pending < :cutoff",
            "ExpressionAttributeNames": {"#pending": PENDING_SINCE},
            "ExpressionAttributeValues": _item({":cutoff": older_than}),
        }
        try:
            due = self._scan_due(request)
        except ClientError as e:
            if aws.error_code(e) != "ValidationException" or PENDING_INDEX not in str(e):
                raise
            log.warning(
                "table %r has no %r index: scanning it whole; run `make aws-setup`", self._images, PENDING_INDEX
            )
            del request["IndexName"]
            due = self._scan_due(request)
        return [key for _, key in sorted(due)[:limit]]

    def _scan_due(self, request: dict) -> list[tuple[str, str]]:
        due: list[tuple[str, str]] = []
        with self._translated(self._images):
            while True:
                response = self._client.scan(**request)
                due += [(item[PENDING_SINCE], item["key"]) for item in map(_plain, response.get("Items", []))]
                if "LastEvaluatedKey" not in response:
                    return due
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        items, next_token = self._scan(self._faces, limit, token, "FaceId")
        return Page([_face_record(item) for item in items], next_token)

    def delete_face(self, face_id: str) -> None:
        face = self._get(self._faces, {"FaceId": face_id})
        if face is None:
            return
        self._delete_faces([face_id])
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
        return _person(item) if _live(item) else None

    def create_person(self, person: dict, not_deleted_since: str | None = None) -> dict | None:
        """Over nothing, or over a tombstone (deleted before `not_deleted_since`
        when one is given)."""
        item = {name: person[name] for name in ("personId", "name", "createdAt", "updatedAt")}
        condition = "attribute_not_exists(personId) OR (attribute_exists(deletedAt) AND attribute_not_exists(erasing))"
        values = {}
        if not_deleted_since is not None:
            condition = "attribute_not_exists(personId) OR (deletedAt < :since AND attribute_not_exists(erasing))"
            values = {":since": not_deleted_since}
        with self._translated(self._people):
            try:
                self._client.put_item(
                    TableName=self._people,
                    Item=_item(item),
                    ConditionExpression=condition,
                    **({"ExpressionAttributeValues": _item(values)} if values else {}),
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

    def remove_person(self, person_id: str, deleted_at: str) -> list[str] | None:
        """The item becomes a tombstone (its face set stays until each face
        has left it), then each face leaves in a transaction with the set.
        A crash in between leaves faces naming a tombstone: `check` finds
        them (face_owner_disagrees) and `repair` clears them."""
        item = self._update_person(
            person_id, "SET deletedAt = :at REMOVE #name, createdAt, updatedAt", {":at": deleted_at}, {"#name": "name"}
        )
        if item is None:
            return None
        face_ids = sorted(item.get("faceIds", set()))
        return self.disassociate_faces(person_id, face_ids)

    def person_deleted_at(self, person_id: str) -> str | None:
        item = self._get(self._people, {"personId": person_id}, projection="deletedAt")
        return (item or {}).get("deletedAt")

    def mark_erasure(self, person_id: str, erasure: dict) -> dict:
        """A person, a tombstone or nothing: one conditional write each,
        tried in turn until one takes or an erasure is found under way. The
        item keeps its name while the erasure runs."""
        tries = (
            (
                "person",
                "SET deletedAt = :at, erasing = :erasing",
                "attribute_exists(personId) AND attribute_not_exists(deletedAt)",
            ),
            ("tombstone", "SET erasing = :erasing", "attribute_exists(deletedAt) AND attribute_not_exists(erasing)"),
            ("nothing", "SET deletedAt = :at, erasing = :erasing", "attribute_not_exists(personId)"),
        )
        for _ in range(BATCH_ATTEMPTS):
            for found, update, condition in tries:
                values = {":erasing": {**erasure, "found": found}}
                if ":at" in update:
                    values[":at"] = erasure["since"]
                item = self._update_people_item(person_id, update, condition, values)
                if item is not None:
                    return {**item["erasing"], "name": item.get("name")}
            item = self._get(self._people, {"personId": person_id})
            if item is not None and "erasing" in item:
                return {**item["erasing"], "name": item.get("name")}
        raise ServiceUnavailable(f"Person {person_id!r} kept changing while their erasure began; retry.")

    def update_erasure(self, person_id: str, erasure: dict) -> None:
        progress = {name: value for name, value in erasure.items() if name != "name"}
        self._update_people_item(
            person_id, "SET erasing = :erasing", "attribute_exists(erasing)", {":erasing": progress}
        )

    def erasures_under_way(self) -> list[dict]:
        """A scan of the people table (people and tombstones: small) for the items holding an erasure."""
        found, request = [], {"TableName": self._people, "FilterExpression": "attribute_exists(erasing)"}
        with self._translated(self._people):
            while True:
                response = self._client.scan(**request)
                found += [_plain(item) for item in response.get("Items", [])]
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return [
            {"personId": item["personId"], "since": item["erasing"]["since"], "photos": item["erasing"]["photos"]}
            for item in sorted(found, key=lambda item: item["personId"])
        ]

    def finish_erasure(self, person_id: str, erased_at: str) -> None:
        """Everything but the id and the times goes (the face set too: the
        erasure deleted each face)."""
        self._update_people_item(
            person_id,
            "SET erasedAt = :at, deletedAt = if_not_exists(deletedAt, :at) "
            "REMOVE #name, createdAt, updatedAt, erasing, faceIds",
            "attribute_exists(personId)",
            {":at": erased_at},
            {"#name": "name"},
        )

    def list_people(self, limit: int, token: str | None = None) -> Page:
        items, next_token = self._scan(self._people, limit, token, "personId")
        return Page([_person(item) for item in items if _live(item)], next_token)

    def find_people(self, person_ids: list[str]) -> dict[str, dict]:
        ids = [person_id for person_id in person_ids if not person_id.startswith(RESERVED_PREFIX)]
        found = self._batch_get(ids, self._people, "personId")
        return {person_id: _person(item) for person_id, item in found.items() if _live(item)}

    def associate_faces(self, person_id: str, face_ids: list[str]) -> list[str] | None:
        """Per chunk of faces, one TransactWriteItems: each face item gets
        UserId, the person's set gains them (and a previous person's loses
        them). A face item gone meanwhile is left out and the rest retried."""
        faces = self._batch_get(face_ids)
        done: list[str] = []
        ids = [face_id for face_id in dict.fromkeys(face_ids) if face_id in faces]
        if not ids:
            return [] if self.get_person(person_id) is not None else None
        for start in range(0, len(ids), MAX_TRANSACT_ITEMS // 2 - 1):
            chunk = ids[start : start + MAX_TRANSACT_ITEMS // 2 - 1]
            while chunk:
                actions = [(_set_owner(self._faces, face_id, person_id), face_id) for face_id in chunk]
                previous: dict[str, list[str]] = {}
                for face_id in chunk:
                    owner = faces[face_id].get("UserId")
                    if owner and owner != person_id:
                        previous.setdefault(owner, []).append(face_id)
                actions += [(_leave_set(self._people, owner, lost), None) for owner, lost in previous.items()]
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
        """Per face, one transaction: the face item loses UserId (if still
        this person's) and the person's set loses the face, so the set never
        names a face that is not theirs."""
        done = []
        for face_id in dict.fromkeys(face_ids):
            clear = (_clear_owner(self._faces, face_id, person_id), face_id)
            if self._transact_once([clear, (_leave_set(self._people, person_id, [face_id]), None)]):
                continue  # not (or no longer) this person's face
            done.append(face_id)
        return done

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
        return self._update_people_item(person_id, update, None, values, names)

    def _update_people_item(
        self, person_id: str, update: str, condition: str | None, values: dict, names: dict | None = None
    ) -> dict | None:
        """UpdateItem on the people table under `condition` (None: on a
        person that is one, not a tombstone): the item after, or None when
        the condition failed."""
        request = _person_update(self._people, person_id, update, values, names)["Update"]
        if condition is not None:
            request["ConditionExpression"] = condition
        with self._translated(self._people):
            try:
                response = self._client.update_item(**request, ReturnValues="ALL_NEW")
            except ClientError as e:
                if aws.error_code(e) != "ConditionalCheckFailedException":
                    raise
                return None
        return _plain(response.get("Attributes", {}))

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
        names = {
            "#record": "record",
            "#etag": "etag",
            "#revision": "revision",
            "#pending": PENDING_SINCE,
            "#shard": DUE_SHARD,
        }
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

    def _delete_faces(self, face_ids: list[str]) -> list[dict]:
        """Delete face items, each with its person's set if it has one, in
        transactions whose conditions hold the owner as read: an association
        landing in between cancels it, the items are read again and the
        delete is tried again, so no person keeps a face that is gone.
        Returns the items as they were deleted."""
        deleted: list[dict] = []
        left = list(dict.fromkeys(face_ids))
        for _ in range(BATCH_ATTEMPTS):
            if not left:
                return deleted
            items = self._batch_get(left)
            owned = [items[i] for i in left if i in items and items[i].get("UserId")]
            free = [i for i in left if i in items and not items[i].get("UserId")]
            taken = self._delete_if_free(free)
            deleted += [items[i] for i in free if i not in taken]
            retry = list(taken)
            for start in range(0, len(owned), MAX_TRANSACT_ITEMS // 2):
                chunk = owned[start : start + MAX_TRANSACT_ITEMS // 2]
                actions = [(_delete_owned(self._faces, item), item["FaceId"]) for item in chunk]
                theirs: dict[str, list[str]] = {}
                for item in chunk:
                    theirs.setdefault(item["UserId"], []).append(item["FaceId"])
                actions += [(_leave_set(self._people, person, ids), None) for person, ids in theirs.items()]
                failed = self._transact_once(actions)
                if failed:
                    retry += [item["FaceId"] for item in chunk]
                else:
                    deleted += chunk
            left = retry
        raise ServiceUnavailable(f"DynamoDB table {self._faces!r} kept changing while faces were being deleted; retry.")

    def _delete_if_free(self, face_ids: list[str]) -> list[str]:
        """Faces of no one: one conditional DeleteItem each (a batch cannot
        hold a condition), so a face associated meanwhile is not lost from
        its person's set. Returns those that were taken meanwhile."""
        taken = []
        with self._translated(self._faces):
            for face_id in face_ids:
                try:
                    self._client.delete_item(
                        TableName=self._faces,
                        Key=_item({"FaceId": face_id}),
                        ConditionExpression="attribute_not_exists(UserId)",
                    )
                except ClientError as e:
                    if aws.error_code(e) != "ConditionalCheckFailedException":
                        raise
                    taken.append(face_id)
        return taken

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
                names = {"#key": key, "#record": "record"}  # DynamoDB refuses a name the projection does not use
                request["ExpressionAttributeNames"] = {name: v for name, v in names.items() if name in projection}
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


def _live(item: dict | None) -> bool:
    """A person item that is a person: not a tombstone, not a reserved item."""
    return item is not None and not item["personId"].startswith(RESERVED_PREFIX) and "deletedAt" not in item


def _with_due(update: str, record: dict) -> tuple[str, dict]:
    """The update expression and values that keep the sparse `due` index
    (DUE_SHARD, PENDING_SINCE) on the record's redrive_due."""
    due = redrive_due(record)
    if due is None:
        return update + " REMOVE #pending, #shard", {}
    return update + ", #pending = :pending, #shard = :shard", {":pending": due, ":shard": due_shard(record["key"])}


def due_shard(key: str) -> str:
    """The `due` index's shard of an image key (stable, spread evenly)."""
    return str(zlib.crc32(key.encode("utf-8")) % DUE_SHARDS)


class _NoDueIndex(Exception):
    """The images table has no `due` index yet."""


def _with_owner(face: dict, item: dict | None) -> dict:
    record = {name: value for name, value in face.items() if name != "UserId"}
    return {**record, "UserId": item["UserId"]} if item and item.get("UserId") else record


def _leave_set(table: str, person_id: str, face_ids: list[str]) -> dict:
    """A transaction's Update taking faces out of a person's set (a person
    or a tombstone: never an Update that would make a new item)."""
    return {
        "Update": {
            "TableName": table,
            "Key": _item({"personId": person_id}),
            "UpdateExpression": "DELETE faceIds :ids",
            "ConditionExpression": "attribute_exists(personId)",
            "ExpressionAttributeValues": _item({":ids": set(face_ids)}),
        }
    }


def _delete_owned(table: str, item: dict) -> dict:
    return {
        "Delete": {
            "TableName": table,
            "Key": _item({"FaceId": item["FaceId"]}),
            "ConditionExpression": "UserId = :owner",
            "ExpressionAttributeValues": _item({":owner": item["UserId"]}),
        }
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
    """A transaction's Update of a person item that is a person (not a tombstone)."""
    request = {
        "TableName": table,
        "Key": _item({"personId": person_id}),
        "UpdateExpression": update,
        "ConditionExpression": "attribute_exists(personId) AND attribute_not_exists(deletedAt)",
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
    return ImageState(item["key"], record["etag"], record["status"], record["faceCount"], record.get("uploadedAt"))


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
