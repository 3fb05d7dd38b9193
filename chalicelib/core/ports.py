"""The abstract engine and stores. The use cases talk only to these; the
embedded (dlib, SQLite, files) and AWS (Rekognition, DynamoDB, S3) adapters
implement them. Records are plain dicts shaped like Rekognition's."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from chalicelib.core.naming import StrangerModel


@dataclass(frozen=True)
class PhotoVersion:
    """One stored version of a photo: what an indexing run works on.
    `version_id` is S3's VersionId (a versioned bucket); `sequencer` orders
    the versions of one key (S3's event sequencer, left-padded; the file
    store's own counter offline), None where the caller cannot know it."""

    key: str
    etag: str
    version_id: str | None = None
    sequencer: str | None = None


@dataclass(frozen=True)
class StoredPhoto:
    """A photo as the store holds it now (`put` and `head`)."""

    key: str
    etag: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    version_id: str | None = None
    sequencer: str | None = None
    original_content_type: str = ""  # what was uploaded, when it was converted to content_type
    # When this version was stored (ISO 8601; S3's LastModified, to the
    # second): when the upload happened, for a photo put in the bucket by
    # other means than the API. Not part of a version's identity.
    stored_at: str | None = field(default=None, compare=False)

    @property
    def version(self) -> PhotoVersion:
        return PhotoVersion(self.key, self.etag, self.version_id, self.sequencer)


@dataclass(frozen=True)
class ListedPhoto:
    """What a listing of the store gives per photo: no content type, no
    metadata (S3's ListObjectsV2 has neither; `head` has both)."""

    key: str
    etag: str
    size: int
    stored_at: str | None = field(default=None, compare=False)  # as StoredPhoto's


@dataclass(frozen=True)
class Page:
    """One page of a listing; `next` is an opaque token, None on the last page."""

    items: list
    next: str | None = None


@dataclass(frozen=True)
class Committed:
    """What RecordStore.commit_faces wrote: the image record (with its new
    revision) and the face records it replaced, as they were when they went
    (with their UserId), for the caller to retire from the collection."""

    record: dict
    replaced: list[dict]


@dataclass(frozen=True, slots=True)
class ImageState:
    """What `check` needs of an image record, without the record itself
    (RecordStore.list_image_states): at a million images the records do not
    fit in memory at once, these do."""

    key: str
    etag: str
    status: str
    face_count: int
    uploaded_at: str | None = None  # the recorded version's upload (StoredPhoto.stored_at or the API's own time)


@dataclass(frozen=True, slots=True)
class FaceKey:
    """A face record's id, its image's key and its person (RecordStore.list_face_keys)."""

    face_id: str
    image_key: str
    user_id: str | None = None


@dataclass(frozen=True)
class QueuedMessage:
    """One message an indexing worker received from the queue: its body,
    the handle that deletes it or changes when it is seen again, and how
    many times it has been received (SQS's ApproximateReceiveCount)."""

    body: str
    receipt: str
    receive_count: int = 1


class FaceEngine(ABC):
    """A face collection: IndexFaces, SearchFacesByImage, DeleteFaces."""

    @abstractmethod
    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        """Index every face of that very version of the stored photo;
        returns IndexFaces' output shape (FaceRecords, FaceModelVersion,
        UnindexedFaces). Raises NotFound when the version is gone."""

    @abstractmethod
    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        """Search the largest face of `data`; returns SearchFacesByImage's
        output shape, without SearchedFaceBoundingBox when there is no face."""

    @abstractmethod
    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        """Search every face of `data`: one SearchFacesByImage-shaped result
        per face found (largest first); an empty list when there is none."""

    @abstractmethod
    def delete_faces(self, face_ids: list[str]) -> None:
        """Remove faces from the collection; ids already gone are ignored."""

    @abstractmethod
    def list_faces(self, limit: int, token: str | None = None) -> Page:
        """The collection's faces (ListFaces' Face shape), a page at a time."""

    @abstractmethod
    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        """Those of `face_ids` the collection holds, in ListFaces' Face shape
        (ExternalImageId says whose photo), by id."""

    @abstractmethod
    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        """The ids of the collection's faces (str items), a page at a time
        (up to `limit`: an adapter may give fewer), in no promised order:
        what `check` and `reindex` compare, a million at a time."""

    @abstractmethod
    def describe(self) -> dict:
        """Engine name, model version, face count and the settings in force, for GET /info."""

    @abstractmethod
    def face_count(self) -> int:
        """How many faces the collection holds, for the naming rule
        (core/naming.py); it may be a minute old (an adapter may cache it)."""

    @abstractmethod
    def stranger_model(self) -> StrangerModel:
        """How similar a stranger's face scores against a query, on this
        engine's similarity scale (core/naming.py)."""

    def room_left(self) -> int | None:
        """How many more faces the collection takes (it may be a minute
        old), or None when it has no limit."""
        return None

    def probe(self, key: str) -> bool | None:
        """Whether the engine works on the stored photo `key` now (a
        read-only call; the circuit breaker's question, core/pacing.py):
        False when the service fails, None when it cannot tell."""
        return None


class PhotoStore(ABC):
    """Where the photos themselves live (S3, or files)."""

    @abstractmethod
    def put(
        self, key: str, data: bytes, content_type: str, metadata: dict[str, str], original_content_type: str = ""
    ) -> StoredPhoto:
        """Store a new version of `key`; returns it with its etag (and version).
        `original_content_type`: what was uploaded, when it was converted."""

    @abstractmethod
    def head(self, key: str) -> StoredPhoto | None:
        """The current version of `key`, or None when there is none."""

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The current version's bytes; raises NotFound when it is gone."""

    @abstractmethod
    def download_url(self, key: str) -> str | None:
        """A short-lived URL a client can fetch the photo from, or None when
        the API serves the bytes itself."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the photo, every version of it; a photo already gone is not an error."""

    @abstractmethod
    def list(self, limit: int, token: str | None = None) -> Page:
        """ListedPhoto items, a page at a time."""

    @abstractmethod
    def replace_metadata(self, key: str, etag: str, metadata: dict[str, str]) -> StoredPhoto | None:
        """Store the current version of `key` again, the same bytes with
        `metadata` instead of its own, as a new version; the versions before
        it go (they carry the old metadata). None when the photo is gone or
        no longer holds the bytes `etag`. (An erasure takes a name out of a
        photo it keeps.)"""


class RecordStore(ABC):
    """Image and face records (DynamoDB, or SQLite).

    Image records carry a `revision`, which every write of the record
    changes (records.next_revision: a new record starts at a random one,
    so a record removed and made again never repeats one). The writes that
    race each other (indexing runs, deletes) are compare-and-set on it: they
    happen only if the record is still at the revision the caller read
    (None: the record must not exist), so the decisions stay in the use
    cases and the stores only promise atomicity.

    A face record belongs to its image once the image record lists it:
    reads (faces_of, find_faces, get_face) give only such faces. A store
    whose commit is not one atomic write (DynamoDB) may be left by a crash
    with face records no image lists; list_face_keys still lists them, so
    that `check` finds them.

    The sparse index behind list_pending holds the records whose
    records.redrive_due is set, by that time."""

    @abstractmethod
    def get_image(self, key: str) -> dict | None:
        """The image record with its `revision`, read consistently."""

    @abstractmethod
    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        """Write the image record (its faces untouched) if the stored one is
        still at `expected_revision`; returns it with its new revision, or
        None when another writer came first."""

    @abstractmethod
    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int | None) -> Committed | None:
        """Replace the image record and all of its face records if the
        stored one is still at `expected_revision`: a face the image had
        already keeps its UserId, the others go. Returns what was written
        and replaced, or None when another writer came first (nothing is
        written then)."""

    @abstractmethod
    def remove_image(self, key: str, expected_revision: int | None = None) -> list[str] | None:
        """Remove the image record and its face records, whatever their
        revision, or only if still at `expected_revision` when one is given.
        Returns the removed face ids, or None when another writer came
        first. A record already gone is not an error: an empty list."""

    @abstractmethod
    def faces_of(self, key: str) -> list[dict]: ...

    @abstractmethod
    def find_faces(self, face_ids: list[str]) -> dict[str, tuple[dict, dict]]:
        """Face records by id, each with its image's metadata, in one batch."""

    @abstractmethod
    def get_face(self, face_id: str) -> dict | None: ...

    @abstractmethod
    def list_images(self, limit: int, token: str | None = None) -> Page: ...

    @abstractmethod
    def list_pending(self, older_than: str, limit: int) -> list[str]:
        """Keys of the images the re-drive owes a visit (records.redrive_due)
        due before `older_than` (an ISO time), the longest due first, at
        most `limit` of them."""

    def get_images(self, keys: list[str]) -> dict[str, dict]:
        """The image records of those of `keys` that have one, by key (a
        store may read them in batches)."""
        return {key: image for key in keys if (image := self.get_image(key)) is not None}

    def existing_faces(self, face_ids: list[str]) -> set[str]:
        """Those of `face_ids` that have a face record, whether or not its
        image lists it (what `check` asks of the collection's faces no read
        gives, which are few). By default through list_face_keys; a store
        may look them up."""
        wanted, found = set(face_ids), set()
        token = None
        while wanted - found:
            page = self.list_face_keys(10_000, token)
            found |= {face.face_id for face in page.items if face.face_id in wanted}
            if page.next is None:
                break
            token = page.next
        return found

    def count_pending(self, older_than: str, most: int) -> int:
        """How many of those there are, counted up to `most` (a store may
        count them without reading them: the re-drive's alarm asks every
        minute, whatever the backlog)."""
        return len(self.list_pending(older_than, most))

    @abstractmethod
    def list_faces(self, limit: int, token: str | None = None) -> Page: ...

    # The id-only listings below are what `check` and `reindex` read: every
    # record of a large archive would not fit in memory, these few fields
    # do. Pages hold up to `limit` items (an adapter may give fewer), in no
    # promised order (DynamoDB scans have none).

    @abstractmethod
    def list_image_states(self, limit: int, token: str | None = None) -> Page:
        """ImageState items: each image record's key, etag, status and faceCount."""

    @abstractmethod
    def list_face_keys(self, limit: int, token: str | None = None) -> Page:
        """FaceKey items: each face record's id and its image's key."""

    @abstractmethod
    def delete_face(self, face_id: str) -> None:
        """Remove one face record and lower its image's faceCount; a face
        already gone is not an error."""

    @abstractmethod
    def count_images(self) -> int: ...

    # People. A person record is {personId, name, faceCount, createdAt,
    # updatedAt}; a face record associated with a person carries its id as
    # `UserId` (as Rekognition's Face does). Removing face records (a
    # commit that replaces them, remove_image, delete_face) also takes
    # them out of their person. A deleted person leaves a tombstone (their
    # id and when, never their name) that no read but person_deleted_at
    # and the erasure methods see.

    @abstractmethod
    def get_person(self, person_id: str) -> dict | None: ...

    @abstractmethod
    def create_person(self, person: dict, not_deleted_since: str | None = None) -> dict | None:
        """Write a new person record (no faces); None if one exists already,
        or (given `not_deleted_since`) if one was deleted at or after then."""

    @abstractmethod
    def rename_person(self, person_id: str, name: str, updated_at: str) -> dict | None:
        """The renamed record, or None when there is no such person."""

    @abstractmethod
    def remove_person(self, person_id: str, deleted_at: str) -> list[str] | None:
        """Replace the person by a tombstone; their face records stay,
        without UserId. Returns those faces' ids, or None when there was no
        such person."""

    @abstractmethod
    def person_deleted_at(self, person_id: str) -> str | None:
        """When the person was deleted, if their tombstone is all there is."""

    # Erasure (core/erasure.py). While a person is being erased their
    # tombstone holds the erasure under way (`erasure`: its progress, and
    # their name, which it needs until the end): a crash leaves it there
    # for the retry to finish. No person can be created over it meanwhile.

    @abstractmethod
    def mark_erasure(self, person_id: str, erasure: dict) -> dict:
        """Begin the erasure of a person, whatever is left of them: a person
        becomes a tombstone (deleted at erasure["since"]; their faces keep
        their UserId until they are deleted), a tombstone or no record at
        all holds the erasure too. Returns the erasure as stored, with
        "name" (None when no record names them) and "found" (what the first
        marking found: "person", "tombstone" or "nothing"); an erasure
        already under way is returned as it stands (a retry)."""

    @abstractmethod
    def update_erasure(self, person_id: str, erasure: dict) -> None:
        """Record the progress of the erasure under way (its name stays)."""

    @abstractmethod
    def erasures_under_way(self) -> list[dict]:
        """The erasures begun and not finished: {"personId", "since", "photos"} each."""

    @abstractmethod
    def finish_erasure(self, person_id: str, erased_at: str) -> None:
        """The erasure is done: the tombstone keeps the person's id and when
        they were deleted and erased, nothing else."""

    @abstractmethod
    def list_people(self, limit: int, token: str | None = None) -> Page: ...

    @abstractmethod
    def find_people(self, person_ids: list[str]) -> dict[str, dict]:
        """Person records by id, in one batch; ids unknown are left out."""

    @abstractmethod
    def associate_faces(self, person_id: str, face_ids: list[str]) -> list[str] | None:
        """Give these face records the person's UserId (whatever they had).
        Returns the ids of the face records that exist (the others are left
        out), or None when there is no such person (nothing is written)."""

    @abstractmethod
    def disassociate_faces(self, person_id: str, face_ids: list[str]) -> list[str]:
        """Take UserId off those of `face_ids` that carry this person's;
        returns their ids."""

    @abstractmethod
    def faces_of_person(self, person_id: str) -> list[dict]: ...

    @abstractmethod
    def save_suggestions(self, suggestions: dict) -> None:
        """Replace the suggested people: {"suggestions": [...], "computedAt", ...}."""

    @abstractmethod
    def get_suggestions(self) -> dict | None:
        """What save_suggestions last saved, or None."""


class PeopleEngine(ABC):
    """People in the engine's collection, as Rekognition's Users API models
    them (a person is a User, UserId = personId; a face belongs to at most
    one), and the searches that start from a stored face or compare two
    photos. Every method answers in the shape of the Rekognition operation
    it names."""

    @abstractmethod
    def create_user(self, user_id: str) -> None:
        """CreateUser; a user that exists already is not an error."""

    @abstractmethod
    def delete_user(self, user_id: str) -> None:
        """DeleteUser (its faces stay, no longer associated); a user already
        gone is not an error."""

    @abstractmethod
    def associate_faces(self, user_id: str, face_ids: list[str], threshold: float) -> dict:
        """AssociateFaces' output (AssociatedFaces, UnsuccessfulFaceAssociations
        with Rekognition's reasons, UserStatus). `threshold` is its
        UserMatchThreshold: a face joins a user that has faces only if it
        looks like them at least that much. NotFound if the user does not exist."""

    @abstractmethod
    def disassociate_faces(self, user_id: str, face_ids: list[str]) -> dict:
        """DisassociateFaces' output. NotFound if the user does not exist."""

    @abstractmethod
    def search_users_by_image(self, data: bytes, threshold: float, max_users: int) -> dict:
        """SearchUsersByImage on the largest face of `data`: UserMatches best
        first, SearchedFace, UnsearchedFaces, FaceModelVersion; no
        SearchedFace and no matches when the photo has no face."""

    @abstractmethod
    def search_users(self, face_id: str, threshold: float, max_users: int) -> dict:
        """SearchUsers by a stored face. NotFound if the face is not in the collection."""

    @abstractmethod
    def search_faces(self, face_id: str, threshold: float, max_faces: int) -> dict:
        """SearchFaces: the collection's faces like the stored face
        `face_id`, never the face itself. NotFound if it is not in the collection."""

    @abstractmethod
    def compare_faces(self, source: bytes, target: bytes, threshold: float) -> dict:
        """CompareFaces: the largest face of `source` against every face of
        `target`. A photo without a face gives empty lists (and no
        SourceImageFace when it is the source)."""

    @abstractmethod
    def owners(self, face_ids: list[str]) -> dict[str, str | None]:
        """Whose each of `face_ids` is in the collection (which holds the
        truth about whose face is whose): the UserId, or None for a face of
        no one; faces not in the collection are left out."""

    @abstractmethod
    def faces_of_user(self, user_id: str) -> list[str]:
        """The ids of the user's faces (ListFaces by UserId); none for a user
        that does not exist."""

    @abstractmethod
    def list_users(self) -> list[str]:
        """Every UserId of the collection (ListUsers), for `check`."""

    @abstractmethod
    def similar_faces(self, face_ids: list[str], threshold: float) -> dict[str, dict[str, float]]:
        """For each of `face_ids` in the collection, the others of
        `face_ids` that look like it at least `threshold` (similarity by
        face id): the graph suggested people are grouped from."""


@dataclass(frozen=True)
class QueueDepth:
    """What the queue holds (SQS's approximate counts, which may lag a
    minute): messages waiting to be received, received and not yet deleted
    (being worked on, or held back after a failure), and delayed (sent back
    for later)."""

    waiting: int = 0
    in_flight: int = 0
    delayed: int = 0

    @property
    def total(self) -> int:
        return self.waiting + self.in_flight + self.delayed


class IndexQueue(ABC):
    """The queue between the bucket's events and the indexing workers (SQS
    on AWS): it keeps every event until a worker is done with it, gives it
    back when a worker fails, and moves it to a dead-letter queue after a
    bounded number of receives (core/index_queue.py)."""

    @abstractmethod
    def send(self, bodies: list[str], delay_seconds: int = 0) -> None:
        """Queue new messages, seen by the workers after `delay_seconds`."""

    @abstractmethod
    def delete(self, receipts: list[str]) -> None:
        """Remove received messages: done with (a handle already gone is not an error)."""

    @abstractmethod
    def retry_after(self, receipts: list[str], seconds: int) -> None:
        """Make received messages visible again in `seconds` rather than
        after the queue's visibility timeout."""

    @abstractmethod
    def depth(self) -> QueueDepth:
        """What the queue holds now (approximately)."""


class SharedState(ABC):
    """Small items that every function of a stage shares, each changed
    atomically (on AWS, items of a DynamoDB table): the schedules that keep
    Rekognition's calls within their quotas, the indexing's circuit
    breaker, where the scheduled check stands (core/pacing.py,
    ops/maintenance.py). Times are seconds since the epoch. A field set to
    None is removed."""

    @abstractmethod
    def reserve(self, name: str, now: float, step: float, latest: float) -> tuple[float | None, dict]:
        """A turn on the schedule `name` (its field `tat`: when the next turn
        is free): the turn starts at `tat`, or `now` if that is later, and
        the next one `step` seconds after it. Returns when the turn starts,
        or None when it would start after `latest` (nothing is taken), with
        the item as it stands."""

    @abstractmethod
    def hold_until(self, name: str, until: float, values: dict | None = None) -> dict:
        """No turn of the schedule `name` before `until` (its `tat` moved
        there unless it is later already), with `values` set; the item after."""

    @abstractmethod
    def read(self, name: str) -> dict:
        """The item (empty when it was never written)."""

    @abstractmethod
    def update(
        self, name: str, values: dict | None = None, add: dict | None = None, only_if: dict | None = None
    ) -> dict | None:
        """Set `values` and add the numbers in `add` to their fields, if each
        field of `only_if` still holds that value (None: the field is
        absent). The item after, or None when the condition failed."""


class AuditLog(ABC):
    """Who asked what of the archive, and whose ids came back: one line per
    request (chalicelib.api.request_log), kept apart from the other logs and
    for its own retention (docs/privacy.md): a file a day offline, a
    CloudWatch log group on AWS."""

    @abstractmethod
    def write(self, line: dict) -> None:
        """Keep the line; a failure to keep it is logged, never raised (the
        request it describes has been answered)."""
