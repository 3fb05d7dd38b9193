"""The abstract engine and stores. The use cases talk only to these; the
embedded (dlib, SQLite, files) and AWS (Rekognition, DynamoDB, S3) adapters
implement them. Records are plain dicts shaped like Rekognition's."""

from abc import ABC, abstractmethod
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class Page:
    """One page of a listing; `next` is an opaque token, None on the last page."""

    items: list
    next: str | None = None


@dataclass(frozen=True, slots=True)
class ImageState:
    """What `check` needs of an image record, without the record itself
    (RecordStore.list_image_states): at a million images the records do not
    fit in memory at once, these do."""

    key: str
    etag: str
    status: str
    face_count: int


@dataclass(frozen=True, slots=True)
class FaceKey:
    """A face record's id and its image's key (RecordStore.list_face_keys)."""

    face_id: str
    image_key: str


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
    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        """The ids of the collection's faces (str items), a page at a time
        (up to `limit`: an adapter may give fewer), in no promised order:
        what `check` and `reindex` compare, a million at a time."""

    @abstractmethod
    def describe(self) -> dict:
        """Engine name, model version, face count and the settings in force, for GET /info."""


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


class RecordStore(ABC):
    """Image and face records (DynamoDB, or SQLite).

    Image records carry a `revision`, which every write of the record
    increments. The writes that race each other (indexing runs, deletes)
    are compare-and-set on it: they happen only if the record is still at
    the revision the caller read (None: the record must not exist), so the
    decisions stay in the use cases and the stores only promise atomicity."""

    @abstractmethod
    def get_image(self, key: str) -> dict | None:
        """The image record with its `revision`, read consistently."""

    @abstractmethod
    def put_image(self, image: dict, expected_revision: int | None) -> dict | None:
        """Write the image record (its faces untouched) if the stored one is
        still at `expected_revision`; returns it with its new revision, or
        None when another writer came first."""

    @abstractmethod
    def commit_faces(self, image: dict, faces: list[dict], expected_revision: int) -> list[str] | None:
        """Replace the image record and all of its face records if the
        stored one is still at `expected_revision`. Returns the ids of the
        faces it replaced (for the caller to remove from the collection), or
        None when another writer came first (nothing is written then)."""

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
        """Keys of images pending since before `older_than` (an ISO time),
        at most `limit` of them."""

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
