"""In-memory fakes of the ports, for a unit layer that runs the use cases in
milliseconds: no dlib, no moto, no server. They keep the ports' promises
(compare-and-set on revisions, versions and sequencers, ids gone are
ignored) and nothing more.

A fake photo is a tiny PNG whose text chunk names who is in it:
`photo_of("alice", "bob")`. It passes the API's checks like any photo; the
fake engine "detects" those people, largest first, and matches a searched
photo's first person to the faces indexed for that person. FakePeople
keeps Rekognition's Users on those faces: two faces look alike (99) when
they show the same person, else not at all (10).

The fakes fail as the real adapters do: IndexFaces on a version that is
gone raises NotFound, a stored photo that is not one raises InvalidImage,
one over Rekognition's 15 MB raises PayloadTooLarge; and `fail_next` makes
a fake's next call fail as the AWS adapter of its port fails for a service
error code (tests/contract/test_port_failures.py holds them all to it)."""

import copy
import hashlib
import io
import itertools
import threading
import uuid
from dataclasses import dataclass, replace

from botocore.exceptions import ClientError
from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from chalicelib.aws.clients import translate
from chalicelib.core.config import Settings
from chalicelib.core.errors import InvalidImage, NotFound, PayloadTooLarge
from chalicelib.core.limits import MAX_IMAGE_BYTES
from chalicelib.core.naming import StrangerModel
from chalicelib.core.ports import (
    Committed,
    FaceEngine,
    FaceKey,
    ImageState,
    ListedPhoto,
    Page,
    PeopleEngine,
    PhotoStore,
    PhotoVersion,
    RecordStore,
    StoredPhoto,
)
from chalicelib.core.records import next_revision, now, redrive_due
from chalicelib.core.services import Services

MODEL = "fake-1"


def photo_of(*people: str, shade: int = 0) -> bytes:
    """A 4x4 PNG naming `people`; `shade` makes other bytes for the same people."""
    info = PngInfo()
    info.add_text("faces", ",".join(people))
    out = io.BytesIO()
    Image.new("L", (4, 4), shade).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def people_in(data: bytes) -> list[str]:
    try:
        text = getattr(Image.open(io.BytesIO(data)), "text", {}).get("faces")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise InvalidImage(f"The fake engine could not read the image ({type(e).__name__}).") from e
    if text is None:
        raise InvalidImage("The fake engine reads only photo_of(...) photos.")
    return [name for name in text.split(",") if name]


class FailsOnDemand:
    """What lets a test make a fake fail as the real adapter of its port
    fails: `fail_next("get_image", "ProvisionedThroughputExceededException")`
    makes the next call of that method raise what the AWS adapters raise
    for that service error code (chalicelib.aws.clients.translate, the one
    place that maps them: Throttled here), without taking effect. The
    method is shadowed on the instance only while failures are queued, so
    a fake that is not asked to fail costs nothing more."""

    def fail_next(self, method: str, code: str, message: str = "", times: int = 1) -> None:
        getattr(self, method)  # a method the fake has: a misspelt name fails here, not silently
        queued = self.__dict__.setdefault("_failures", {}).setdefault(method, [])
        queued += [(code, message or code)] * times
        if method in self.__dict__:
            return

        def failing(*args, **kwargs):
            code, detail = queued.pop(0)
            if not queued:
                del self.__dict__[method]
            error = ClientError({"Error": {"Code": code, "Message": detail}}, _operation(method))
            mapped = translate(error, f"the in-memory {type(self).__name__}", "unit")
            if mapped is error:
                raise error  # a code that means a bug: the adapters let it through as it is
            raise mapped from error

        self.__dict__[method] = failing


def _operation(method: str) -> str:
    """A fake's method name as an AWS operation name (get_image: GetImage)."""
    return "".join(part.capitalize() for part in method.split("_"))


@dataclass
class _Version:
    """One entry of a key's version history: a stored photo, or a delete marker (`photo` None)."""

    version_id: str
    photo: StoredPhoto | None = None
    data: bytes = b""


class InMemoryPhotoStore(FailsOnDemand, PhotoStore):
    """A versioned bucket as strict as S3 (tests/contract/test_port_failures.py
    holds it to the S3 adapter over moto):

    - every put is a new version; the reply names its VersionId and ETag,
      never a sequencer nor when it was stored (PutObject's reply has
      neither); `head` says when (LastModified), never a sequencer;
    - every change sends the notification S3 sends, into `events` (an
      S3Events-shaped record: eventName, key, size, eTag, versionId and a
      `sequencer` that orders the changes of a key), at least once is the
      caller's business;
    - `delete` (the port: every version and delete marker, as the adapter
      does) sends ObjectRemoved:Delete per version; `delete_current` is
      S3's plain DeleteObject on a versioned bucket, a delete marker
      (ObjectRemoved:DeleteMarkerCreated); `delete_version` deletes one
      version or marker by id (ObjectRemoved:Delete), which makes the one
      before it current again: S3's documented way back to an earlier
      version, and, on a delete marker, an undelete. No ObjectCreated
      event says that an older version became current."""

    def __init__(self) -> None:
        self._history: dict[str, list[_Version]] = {}  # oldest first; the last one is current
        self._sequence = itertools.count(0x5AED6DCD9028)
        self._lock = threading.Lock()
        self.events: list[dict] = []
        self.clock = now  # what stored_at says: a simulation gives its own
        self.new_id = _new_id  # version ids: a simulation gives its own, seeded

    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], original_content_type: str = ""
    ) -> StoredPhoto:
        with self._lock:
            version_id = self.new_id().replace("-", "")
            stored = StoredPhoto(
                key,
                hashlib.md5(data).hexdigest(),
                len(data),
                content_type,
                dict(metadata),
                version_id,
                None,  # PutObject's reply carries no sequencer (only the event does), nor LastModified
                original_content_type,
            )
            kept = replace(stored, stored_at=self.clock())  # what HeadObject and listings say
            self._history.setdefault(key, []).append(_Version(version_id, kept, data))
            self._send_event("ObjectCreated:Put", key, version_id, stored)
            return stored

    def head(self, key: str) -> StoredPhoto | None:
        with self._lock:
            return self._current_of(key)

    def read(self, key: str) -> bytes:
        with self._lock:
            if self._current_of(key) is None:
                raise NotFound(f"No photo named {key!r}.")
            return self._history[key][-1].data

    def read_version(self, version: PhotoVersion) -> bytes:
        with self._lock:
            for stored in self._history.get(version.key, []):
                if stored.version_id == version.version_id and stored.photo is not None:
                    return stored.data
            raise NotFound(f"No version {version.version_id} of {version.key!r}.")

    def download_url(self, key: str) -> None:
        return None

    def delete(self, key: str) -> None:
        """Every version and delete marker of the key (the port's delete: the S3 adapter's)."""
        with self._lock:
            for stored in self._history.pop(key, []):
                self._send_event("ObjectRemoved:Delete", key, stored.version_id)

    def delete_current(self, key: str) -> str:
        """DeleteObject without a version id on a versioned bucket: a delete
        marker becomes current (even over a key with no photo, as S3 does).
        Returns the marker's version id."""
        with self._lock:
            marker = self.new_id().replace("-", "")
            self._history.setdefault(key, []).append(_Version(marker))
            self._send_event("ObjectRemoved:DeleteMarkerCreated", key, marker)
            return marker

    def delete_version(self, key: str, version_id: str) -> None:
        """DeleteObject with a version id: that version (or delete marker) is
        gone for good, and the one before it is current if it was."""
        with self._lock:
            history = self._history.get(key, [])
            kept = [stored for stored in history if stored.version_id != version_id]
            if len(kept) == len(history):
                return  # S3 answers 204 for a version that is not there, and sends nothing
            self._history[key] = kept
            if not kept:
                del self._history[key]
            self._send_event("ObjectRemoved:Delete", key, version_id)

    def undelete(self, key: str) -> bool:
        """Remove the delete marker that hides the key (the console's
        "undelete"): False when the current version is no marker."""
        with self._lock:
            history = self._history.get(key, [])
            marker = history[-1].version_id if history and history[-1].photo is None else None
        if marker is None:
            return False
        self.delete_version(key, marker)
        return True

    def versions(self, key: str) -> list[tuple[str, str | None]]:
        """ListObjectVersions for one key, oldest first: (version id, etag;
        None for a delete marker)."""
        with self._lock:
            return [(v.version_id, v.photo.etag if v.photo else None) for v in self._history.get(key, [])]

    def replace_metadata(self, key: str, etag: str, metadata: dict[str, str]) -> StoredPhoto | None:
        """The S3 adapter's: CopyObject onto itself (ObjectCreated:Copy, a new
        version of the same bytes), then every other version deleted by id."""
        with self._lock:
            current = self._current_of(key)
            if current is None or current.etag != etag:
                return None
            history = self._history[key]
            version_id = self.new_id().replace("-", "")
            stored = replace(current, metadata=dict(metadata), version_id=version_id, stored_at=self.clock())
            history.append(_Version(version_id, stored, history[-1].data))
            self._send_event("ObjectCreated:Copy", key, version_id, stored)
            for old in history[:-1]:
                self._send_event("ObjectRemoved:Delete", key, old.version_id)
            self._history[key] = history[-1:]
            return stored

    def expire_noncurrent(self) -> None:
        """Drop every version that is no longer current, as the bucket's
        lifecycle rule does a day after it was replaced (make aws-setup)."""
        with self._lock:
            for key, history in list(self._history.items()):
                self._history[key] = history[-1:]

    def list(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            current = {key: self._current_of(key) for key in self._history}
            keys = sorted(k for k, stored in current.items() if stored is not None and k > (token or ""))
            items = [ListedPhoto(k, current[k].etag, current[k].size, current[k].stored_at) for k in keys[:limit]]
        return Page(items, keys[limit - 1] if len(keys) > limit else None)

    @property
    def current(self) -> dict[str, StoredPhoto]:
        """Every key's current version (what a listing shows), for tests to compare."""
        with self._lock:
            current = {key: self._current_of(key) for key in self._history}
        return {key: stored for key, stored in current.items() if stored is not None}

    def _current_of(self, key: str) -> StoredPhoto | None:
        history = self._history.get(key)
        return history[-1].photo if history else None

    def _send_event(self, name: str, key: str, version_id: str, stored: StoredPhoto | None = None) -> None:
        record = {"eventName": name, "key": key, "versionId": version_id, "sequencer": f"{next(self._sequence):X}"}
        if stored is not None:
            record.update(size=stored.size, eTag=stored.etag)
        self.events.append(record)


class FakeEngine(FailsOnDemand, FaceEngine):
    """A collection of named faces; IndexFaces reads the exact version,
    within Rekognition's limit for a photo in S3 (15 MB)."""

    def __init__(self, photos: InMemoryPhotoStore) -> None:
        self._photos = photos
        self.faces: dict[str, dict] = {}  # FaceId -> Face, with the person in "_person"
        self.calls: list[str] = []
        self._lock = threading.Lock()
        self.new_id = _new_id  # FaceIds and ImageIds: a simulation gives its own, seeded

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        self.calls.append("IndexFaces")
        data = self._photos.read_version(photo)
        if len(data) > MAX_IMAGE_BYTES:
            raise PayloadTooLarge(f"The stored photo is {len(data)} bytes; IndexFaces takes {MAX_IMAGE_BYTES}.")
        people = people_in(data)
        image_id = self.new_id()
        records = []
        for i, person in enumerate(people):
            face = {
                "FaceId": self.new_id(),
                "BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.1 * i, "Top": 0.1},
                "ImageId": image_id,
                "ExternalImageId": external_image_id,
                "Confidence": 99.0,
            }
            with self._lock:
                self.faces[face["FaceId"]] = {**face, "_person": person}
            records.append({"Face": face, "FaceDetail": {"BoundingBox": face["BoundingBox"], "Confidence": 99.0}})
        return {"FaceRecords": records, "FaceModelVersion": MODEL, "UnindexedFaces": []}

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        people = people_in(data)
        if not people:
            return {"FaceMatches": [], "FaceModelVersion": MODEL}
        return self._search(people[0], max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        return [self._search(person, max_faces) for person in people_in(data)]

    def delete_faces(self, face_ids: list[str]) -> None:
        with self._lock:
            for face_id in face_ids:
                self.faces.pop(face_id, None)

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            ids = sorted(i for i in self.faces if i > (token or ""))
            items = [_public(self.faces[i]) for i in ids[:limit]]
        return Page(items, ids[limit - 1] if len(ids) > limit else None)

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        with self._lock:
            return {i: _public(self.faces[i]) for i in face_ids if i in self.faces}

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            ids = sorted(i for i in self.faces if i > (token or ""))
        return Page(ids[:limit], ids[limit - 1] if len(ids) > limit else None)

    def describe(self) -> dict:
        return {"engine": "fake", "model": MODEL, "faces": len(self.faces)}

    def face_count(self) -> int:
        return len(self.faces)

    def stranger_model(self) -> StrangerModel:
        return StrangerModel(70.0, 3.0, "the fake engine's")

    def _search(self, person: str, max_faces: int) -> dict:
        with self._lock:
            found = [face for face in self.faces.values() if face["_person"] == person]
        return {
            "SearchedFaceBoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.0, "Top": 0.1},
            "SearchedFaceConfidence": 99.0,
            "FaceMatches": [{"Similarity": 99.0, "Face": _public(face)} for face in found[:max_faces]],
            "FaceModelVersion": MODEL,
        }


ALIKE, UNLIKE = 99.0, 10.0


class FakePeople(FailsOnDemand, PeopleEngine):
    """Users over FakeEngine's faces."""

    def __init__(self, engine: FakeEngine) -> None:
        self._engine = engine
        self.users: set[str] = set()
        self.owners_of: dict[str, str] = {}  # FaceId -> UserId
        self.calls: list[str] = []

    def create_user(self, user_id: str) -> None:
        self.users.add(user_id)

    def delete_user(self, user_id: str) -> None:
        self.users.discard(user_id)
        self.owners_of = {face: user for face, user in self.owners_of.items() if user != user_id}

    def associate_faces(self, user_id: str, face_ids: list[str], threshold: float) -> dict:
        self._require(user_id)
        done, refused = [], []
        for face_id in face_ids:
            owner = self.owners_of.get(face_id)
            own = self._people_of(user_id)
            if face_id not in self._engine.faces:
                refused.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
            elif owner not in (None, user_id):
                refused.append({"FaceId": face_id, "UserId": owner, "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]})
            elif owner == user_id:
                continue
            elif own and self._person(face_id) not in own and threshold > UNLIKE:
                refused.append({"FaceId": face_id, "Confidence": UNLIKE, "Reasons": ["LOW_MATCH_CONFIDENCE"]})
            else:
                self.owners_of[face_id] = user_id
                done.append({"FaceId": face_id})
        return {"AssociatedFaces": done, "UnsuccessfulFaceAssociations": refused, "UserStatus": "ACTIVE"}

    def disassociate_faces(self, user_id: str, face_ids: list[str]) -> dict:
        self._require(user_id)
        done = [face_id for face_id in face_ids if self.owners_of.get(face_id) == user_id]
        for face_id in done:
            del self.owners_of[face_id]
        return {"DisassociatedFaces": [{"FaceId": i} for i in done], "UnsuccessfulFaceDisassociations": []}

    def search_users_by_image(self, data: bytes, threshold: float, max_users: int) -> dict:
        found = people_in(data)
        if not found:
            return {"UserMatches": [], "FaceModelVersion": MODEL, "UnsearchedFaces": []}
        return {
            "UserMatches": self._users_like(found[0], max_users),
            "FaceModelVersion": MODEL,
            "SearchedFace": {"FaceDetail": {"BoundingBox": {"Width": 0.1, "Height": 0.1, "Left": 0.0, "Top": 0.1}}},
            "UnsearchedFaces": [],
        }

    def search_users(self, face_id: str, threshold: float, max_users: int) -> dict:
        return {"UserMatches": self._users_like(self._person(face_id), max_users), "FaceModelVersion": MODEL}

    def search_faces(self, face_id: str, threshold: float, max_faces: int) -> dict:
        person = self._person(face_id)
        found = [f for i, f in self._engine.faces.items() if f["_person"] == person and i != face_id]
        matches = [{"Similarity": ALIKE, "Face": _public(face)} for face in found[:max_faces]]
        return {"SearchedFaceId": face_id, "FaceMatches": matches, "FaceModelVersion": MODEL}

    def compare_faces(self, source: bytes, target: bytes, threshold: float) -> dict:
        who, there = people_in(source), people_in(target)
        if not who:
            return {"FaceMatches": [], "UnmatchedFaces": []}
        box = {"Width": 0.1, "Height": 0.1, "Left": 0.1, "Top": 0.1}
        return {
            "SourceImageFace": {"BoundingBox": box, "Confidence": 99.0},
            "FaceMatches": [{"Similarity": ALIKE, "Face": {"BoundingBox": box}} for p in there if p == who[0]],
            "UnmatchedFaces": [{"BoundingBox": box} for p in there if p != who[0]],
        }

    def owners(self, face_ids: list[str]) -> dict[str, str | None]:
        return {i: self.owners_of.get(i) for i in face_ids if i in self._engine.faces}

    def faces_of_user(self, user_id: str) -> list[str]:
        return sorted(i for i, u in self.owners_of.items() if u == user_id and i in self._engine.faces)

    def list_users(self) -> list[str]:
        return sorted(self.users)

    def similar_faces(self, face_ids: list[str], threshold: float) -> dict[str, dict[str, float]]:
        present = [i for i in face_ids if i in self._engine.faces]
        return {i: {j: ALIKE for j in present if j != i and self._person(j) == self._person(i)} for i in present}

    def _require(self, user_id: str) -> None:
        if user_id not in self.users:
            raise NotFound(f"No user {user_id!r}.")

    def _person(self, face_id: str) -> str:
        if face_id not in self._engine.faces:
            raise NotFound(f"No face {face_id!r}.")
        return self._engine.faces[face_id]["_person"]

    def _people_of(self, user_id: str) -> set[str]:
        return {
            self._engine.faces[i]["_person"]
            for i, u in self.owners_of.items()
            if u == user_id and i in self._engine.faces
        }

    def _users_like(self, person: str, max_users: int) -> list[dict]:
        users = sorted({u for i, u in self.owners_of.items() if i in self._engine.faces and self._person(i) == person})
        return [{"Similarity": ALIKE, "User": {"UserId": u, "UserStatus": "ACTIVE"}} for u in users][:max_users]


class InMemoryRecordStore(FailsOnDemand, RecordStore):
    """Records as DynamoDB keeps them: face items apart from the image item,
    which lists them (`faceIds`), and a commit in two steps, the face items
    then the image (the commit point): `between_commit_steps` runs in
    between, where a simulation crashes it. Reads give listed faces only."""

    def __init__(self) -> None:
        self.images: dict[str, dict] = {}
        self.listed: dict[str, list[str]] = {}  # image key -> the face ids its item lists
        self.faces: dict[str, dict] = {}  # face items, listed or not
        self.people: dict[str, dict] = {}  # tombstones too (deletedAt)
        self.suggestions: dict | None = None
        self.between_commit_steps = lambda: None
        self._lock = threading.RLock()

    def get_image(self, key: str) -> dict | None:
        with self._lock:
            image = self.images.get(key)
            return copy.deepcopy(image) if image else None

    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        with self._lock:
            if self._revision(image["key"]) != expected_revision:
                return None
            return self._write(image, expected_revision)

    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int | None) -> Committed | None:
        key = image["key"]
        with self._lock:
            for face in faces:
                owner = self.faces.get(face["FaceId"], {}).get("UserId")
                record = {name: value for name, value in face.items() if name != "UserId"}
                self.faces[face["FaceId"]] = {**record, "UserId": owner} if owner else record
        self.between_commit_steps()
        with self._lock:
            new = [face["FaceId"] for face in faces]
            if self._revision(key) != expected_revision:
                listed = set(self.listed.get(key, []))
                for face_id in new:
                    if face_id not in listed:
                        self.faces.pop(face_id, None)
                return None
            replaced = [self.faces.pop(i) for i in self.listed.get(key, []) if i not in set(new) and i in self.faces]
            self.listed[key] = new
            return Committed(self._write(image, expected_revision), replaced)

    def remove_image(self, key: str, expected_revision: int | None = None) -> list[str] | None:
        with self._lock:
            if expected_revision is not None and self._revision(key) != expected_revision:
                return None
            removed = self.listed.pop(key, [])
            for face_id in removed:
                self.faces.pop(face_id, None)
            self.images.pop(key, None)
            return removed

    def faces_of(self, key: str) -> list[dict]:
        with self._lock:
            return [dict(self.faces[i]) for i in self.listed.get(key, []) if i in self.faces]

    def find_faces(self, face_ids: list[str]) -> dict[str, tuple[dict, dict]]:
        with self._lock:
            return {
                i: (dict(self.faces[i]), copy.deepcopy(self.images[self.faces[i]["imageKey"]]["metadata"]))
                for i in face_ids
                if self._is_listed(i)
            }

    def get_face(self, face_id: str) -> dict | None:
        with self._lock:
            return dict(self.faces[face_id]) if self._is_listed(face_id) else None

    def list_images(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            keys = sorted(k for k in self.images if k > (token or ""))
            items = [copy.deepcopy(self.images[k]) for k in keys[:limit]]
            return Page(items, keys[limit - 1] if len(keys) > limit else None)

    def list_pending(self, older_than: str, limit: int) -> list[str]:
        with self._lock:
            due = [(redrive_due(image), key) for key, image in self.images.items()]
            return [key for when, key in sorted(d for d in due if d[0] is not None and d[0] < older_than)][:limit]

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            ids = sorted(i for i in self.faces if i > (token or "") and self._is_listed(i))
            return Page([dict(self.faces[i]) for i in ids[:limit]], ids[limit - 1] if len(ids) > limit else None)

    def list_image_states(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            keys = sorted(k for k in self.images if k > (token or ""))
            states = [
                ImageState(
                    k,
                    self.images[k]["etag"],
                    self.images[k]["status"],
                    self.images[k]["faceCount"],
                    self.images[k].get("uploadedAt"),
                )
                for k in keys[:limit]
            ]
        return Page(states, keys[limit - 1] if len(keys) > limit else None)

    def list_face_keys(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            ids = sorted(i for i in self.faces if i > (token or ""))
            keys = [FaceKey(i, self.faces[i]["imageKey"], self.faces[i].get("UserId")) for i in ids[:limit]]
        return Page(keys, ids[limit - 1] if len(ids) > limit else None)

    def delete_face(self, face_id: str) -> None:
        with self._lock:
            face = self.faces.pop(face_id, None)
            image = self.images.get(face["imageKey"]) if face else None
            if image is not None and face_id in self.listed.get(image["key"], []):
                self.listed[image["key"]].remove(face_id)
                self._write({**image, "faceCount": max(0, image["faceCount"] - 1)}, image["revision"])

    def count_images(self) -> int:
        return len(self.images)

    def get_person(self, person_id: str) -> dict | None:
        return self.find_people([person_id]).get(person_id)

    def create_person(self, person: dict, not_deleted_since: str | None = None) -> dict | None:
        with self._lock:
            existing = self.people.get(person["personId"])
            if existing is not None and (
                "deletedAt" not in existing
                or "erasing" in existing
                or (not_deleted_since and existing["deletedAt"] >= not_deleted_since)
            ):
                return None
            self.people[person["personId"]] = {k: v for k, v in person.items() if k != "faceCount"}
            return self.get_person(person["personId"])

    def rename_person(self, person_id: str, name: str, updated_at: str) -> dict | None:
        with self._lock:
            if self.get_person(person_id) is None:
                return None
            self.people[person_id].update(name=name, updatedAt=updated_at)
            return self.get_person(person_id)

    def remove_person(self, person_id: str, deleted_at: str) -> list[str] | None:
        with self._lock:
            if self.get_person(person_id) is None:
                return None
            self.people[person_id] = {"personId": person_id, "deletedAt": deleted_at}
            theirs = [i for i, face in self.faces.items() if face.get("UserId") == person_id]
            for face_id in theirs:
                del self.faces[face_id]["UserId"]
            return [i for i in theirs if self._is_listed(i)]

    def person_deleted_at(self, person_id: str) -> str | None:
        with self._lock:
            return self.people.get(person_id, {}).get("deletedAt")

    def mark_erasure(self, person_id: str, erasure: dict) -> dict:
        with self._lock:
            existing = self.people.get(person_id)
            record = copy.deepcopy(existing) if existing else {"personId": person_id}
            if "erasing" not in record:
                found = "nothing" if existing is None else "tombstone" if "deletedAt" in existing else "person"
                record["erasing"] = {**copy.deepcopy(erasure), "found": found}
                record.setdefault("deletedAt", erasure["since"])
                self.people[person_id] = record
            return {**copy.deepcopy(record["erasing"]), "name": record.get("name")}

    def update_erasure(self, person_id: str, erasure: dict) -> None:
        with self._lock:
            if "erasing" in self.people.get(person_id, {}):
                self.people[person_id]["erasing"] = copy.deepcopy({k: v for k, v in erasure.items() if k != "name"})

    def erasures_under_way(self) -> list[dict]:
        with self._lock:
            return [
                {"personId": i, "since": p["erasing"]["since"], "photos": p["erasing"]["photos"]}
                for i, p in sorted(self.people.items())
                if "erasing" in p
            ]

    def finish_erasure(self, person_id: str, erased_at: str) -> None:
        with self._lock:
            deleted_at = self.people.get(person_id, {}).get("deletedAt", erased_at)
            self.people[person_id] = {"personId": person_id, "deletedAt": deleted_at, "erasedAt": erased_at}
            for face in self.faces.values():
                if face.get("UserId") == person_id:
                    del face["UserId"]

    def list_people(self, limit: int, token: str | None = None) -> Page:
        with self._lock:
            ids = sorted(i for i, p in self.people.items() if i > (token or "") and "deletedAt" not in p)
            return Page([self.get_person(i) for i in ids[:limit]], ids[limit - 1] if len(ids) > limit else None)

    def find_people(self, person_ids: list[str]) -> dict[str, dict]:
        with self._lock:
            return {
                i: {
                    **self.people[i],
                    "faceCount": sum(f.get("UserId") == i for k, f in self.faces.items() if self._is_listed(k)),
                }
                for i in person_ids
                if i in self.people and "deletedAt" not in self.people[i]
            }

    def associate_faces(self, person_id: str, face_ids: list[str]) -> list[str] | None:
        with self._lock:
            if self.get_person(person_id) is None:
                return None
            existing = [i for i in dict.fromkeys(face_ids) if self._is_listed(i)]
            for face_id in existing:
                self.faces[face_id]["UserId"] = person_id
            return existing

    def disassociate_faces(self, person_id: str, face_ids: list[str]) -> list[str]:
        with self._lock:
            theirs = [i for i in dict.fromkeys(face_ids) if self.faces.get(i, {}).get("UserId") == person_id]
            for face_id in theirs:
                del self.faces[face_id]["UserId"]
            return theirs

    def faces_of_person(self, person_id: str) -> list[dict]:
        with self._lock:
            return [dict(f) for k, f in self.faces.items() if f.get("UserId") == person_id and self._is_listed(k)]

    def save_suggestions(self, suggestions: dict) -> None:
        self.suggestions = suggestions

    def get_suggestions(self) -> dict | None:
        return self.suggestions

    def _is_listed(self, face_id: str) -> bool:
        face = self.faces.get(face_id)
        return face is not None and face["imageKey"] in self.images and face_id in self.listed.get(face["imageKey"], [])

    def _revision(self, key: str) -> int | None:
        return self.images[key]["revision"] if key in self.images else None

    def _write(self, image: dict, expected_revision: int | None) -> dict:
        written = copy.deepcopy({**image, "revision": next_revision(expected_revision)})
        self.images[image["key"]] = written
        self.listed.setdefault(image["key"], [])
        return copy.deepcopy(written)


def fake_services(index_on_upload: bool = True) -> Services:
    photos = InMemoryPhotoStore()
    settings = Settings.from_env({"FACEPRINT_STAGE": "unit", "FACEPRINT_DATA_DIR": "/nonexistent"})
    engine = FakeEngine(photos)
    return Services(settings, engine, InMemoryRecordStore(), photos, index_on_upload, FakePeople(engine))


def _new_id() -> str:
    return str(uuid.uuid4())


def _public(face: dict) -> dict:
    return {name: value for name, value in face.items() if name != "_person"}
