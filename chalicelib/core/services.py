"""What every use case is given: the stage's settings and its adapters."""

from dataclasses import dataclass

from chalicelib.core.config import Settings
from chalicelib.core.ports import FaceEngine, PeopleEngine, PhotoStore, RecordStore


@dataclass(frozen=True)
class Services:
    settings: Settings
    engine: FaceEngine
    records: RecordStore
    photos: PhotoStore
    # Offline an upload is indexed before the reply; on AWS the bucket's
    # ObjectCreated event does it, in another function.
    index_on_upload: bool = False
    # People in the engine's collection (Rekognition's Users API).
    people: PeopleEngine | None = None
