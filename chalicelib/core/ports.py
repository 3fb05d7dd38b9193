"""The abstract engine and stores. The service talks only to these; the
embedded (dlib, SQLite, files) and AWS (Rekognition, DynamoDB, S3) adapters
implement them. Records are plain dicts shaped like Rekognition's."""

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StoredPhoto:
    key: str
    etag: str
    size: int
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    original_content_type: str = ""  # what was uploaded, when it was converted to content_type


@dataclass(frozen=True)
class Page:
    """One page of a listing; `next` is an opaque token, None on the last page."""

    items: list
    next: str | None = None


class FaceEngine(ABC):
    """A face collection: IndexFaces, SearchFacesByImage, DeleteFaces."""

    @abstractmethod
    def index_faces(self, key: str, external_image_id: str) -> dict:
        """Index every face of the stored photo `key`; returns IndexFaces'
        output shape (FaceRecords, FaceModelVersion, UnindexedFaces)."""

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
    def describe(self) -> dict:
        """Engine name, model version and face count, for GET /info."""


class PhotoStore(ABC):
    """Where the photos themselves live (S3, or files)."""

    @abstractmethod
    def put(self, photo: StoredPhoto, data: bytes) -> StoredPhoto: ...

    @abstractmethod
    def head(self, key: str) -> StoredPhoto | None: ...

    @abstractmethod
    def read(self, key: str) -> bytes:
        """The photo's bytes; raises NotFound when it is gone."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the photo; a photo already gone is not an error."""

    @abstractmethod
    def list(self, limit: int, token: str | None = None) -> Page:
        """StoredPhoto items, a page at a time."""


class RecordStore(ABC):
    """Image and face records (DynamoDB, or SQLite)."""

    @abstractmethod
    def atomic(self) -> AbstractContextManager:
        """A unit of work: the writes inside happen together or not at all
        where the store can promise it (SQLite); a no-op elsewhere."""

    @abstractmethod
    def get_image(self, key: str) -> dict | None: ...

    @abstractmethod
    def mark_pending(self, image: dict) -> None:
        """Record an uploaded image as pending, unless this very version
        (same etag) is already recorded."""

    @abstractmethod
    def save_image(self, image: dict, faces: list[dict]) -> None:
        """Replace the image record and all of its face records."""

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
    def list_faces(self, limit: int, token: str | None = None) -> Page: ...

    @abstractmethod
    def delete_face(self, face_id: str) -> None:
        """Remove one face record and lower its image's faceCount; a face
        already gone is not an error."""

    @abstractmethod
    def delete_image(self, key: str) -> None:
        """Remove the image record and all its face records; idempotent."""

    @abstractmethod
    def count_images(self) -> int: ...


PhotoListener = Callable[[str], None]
