"""`make seed FACES=N` and `make unseed`: synthetic faces in the embedded
stage's archive, to try it at a million faces (docs/engine.md, "A million faces").

Descriptors come from chalicelib/embedded/synthetic.py (clustered like
dlib's: several photos a person, strangers as far apart as real ones), one
face per synthetic image; chalicelib/core/synthetic.py says what marks a
synthetic image (its key prefix, its etag, its metadata, its faces'
ExternalImageId). They go in through the engine's own write path, BATCH
faces per transaction: the collection's rows (Collection.add, whose change
log shows them to a running server at its next search) with the image and
face records (SqliteRecordStore.add_indexed), all or nothing. Meanwhile a
thread (Collection.bulk_load) trains the collection's index for the size
the archive will reach, on the first batches, and takes it into use; at the
end it is saved with every seeded face, so a restart loads it at once.

`unseed` removes every synthetic image, its records and its faces, in the
same batches, then retrains the index for what is left."""

import itertools
import time
import uuid
from collections.abc import Callable

import numpy as np

from chalicelib.core import synthetic
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.records import INDEXED, now
from chalicelib.core.services import Services
from chalicelib.embedded.collection import TRAINING_SAMPLE
from chalicelib.embedded.synthetic import synthetic_batches
from chalicelib.ops.progress import Progress

BATCH = 20_000
# Where a synthetic face sits in its (missing) photo: a plausible portrait box.
_BOX = {"Width": 0.32, "Height": 0.41, "Left": 0.34, "Top": 0.22}
_CONFIDENCE = 99.9


def seed(svc: Services, count: int, on_progress: Callable[[Progress], None] = lambda progress: None) -> str:
    """Add `count` synthetic faces (one per synthetic image); returns the
    run's id, which their keys carry (`synthetic/<run>-0000001`)."""
    collection, records = _embedded(svc, "make seed")
    if count < 1:
        raise ValueError(f"FACES must be a whole number of at least 1, not {count}")
    run = uuid.uuid4().hex[:8]
    randomness = int(run, 16)
    model = svc.engine.describe()["model"]
    batches = synthetic_batches(count, randomness, BATCH)
    # The index is trained on the first batches themselves: a sample of
    # another draw (other groups of people) would fit these faces less well.
    first = list(itertools.islice(batches, -(-min(count, TRAINING_SAMPLE) // BATCH)))
    sample = np.concatenate([descriptors for descriptors, _ in first])
    started, done = time.monotonic(), 0
    with collection.bulk_load(collection.count() + count, sample):
        for descriptors, people in itertools.chain(first, batches):
            faces, images = _synthetic_records(run, done, people, model)
            with records.transaction():
                collection.add([(face, descriptor) for face, descriptor in zip(faces, descriptors, strict=True)])
                records.add_indexed(
                    images, [{**face, "imageKey": image["key"]} for face, image in zip(faces, images, strict=True)]
                )
            done += len(descriptors)
            on_progress(Progress(done, count, started))
    return run


def unseed(svc: Services, on_progress: Callable[[Progress], None] = lambda progress: None) -> int:
    """Remove every synthetic image, its records and its faces; returns how
    many faces went."""
    collection, records = _embedded(svc, "make unseed")
    started, removed, token = time.monotonic(), 0, None
    total = _count_synthetic(records)  # one face each: the bar's end, from 0
    on_progress(Progress(0, total, started))
    while True:
        page = records.list_image_states(BATCH, token)
        keys = [image.key for image in page.items if synthetic.is_synthetic(image.key, image.etag)]
        if keys:
            with records.transaction():
                face_ids = records.remove_images(keys)
                collection.delete(face_ids)
            removed += len(face_ids)
            on_progress(Progress(removed, max(total, removed), started))
        if page.next is None:
            break
        token = page.next
    if removed:
        collection.retrain()  # for what is left, saved: a running server takes it at its next search
        collection.close()
    return removed


def _count_synthetic(records) -> int:
    count, token = 0, None
    while True:
        page = records.list_image_states(BATCH, token)
        count += sum(synthetic.is_synthetic(image.key, image.etag) for image in page.items)
        if page.next is None:
            return count
        token = page.next


def _synthetic_records(run: str, first: int, people, model: str) -> tuple[list[dict], list[dict]]:
    """The Face records (as the collection holds them) and image records of
    synthetic images first, first + 1, ... of this run, one face each."""
    updated = now()
    faces, images = [], []
    for offset, person in enumerate(people.tolist()):
        number = first + offset + 1
        key = synthetic.key(run, number)
        image_id = f"{run}-5eed-4000-9000-{number:012x}"
        faces.append(
            {
                "FaceId": f"{run}-5eed-4000-8000-{number:012x}",
                "BoundingBox": _BOX,
                "ImageId": image_id,
                "ExternalImageId": synthetic.external_image_id(key),
                "Confidence": _CONFIDENCE,
                "IndexFacesModelVersion": model,
            }
        )
        images.append(
            {
                "key": key,
                "status": INDEXED,
                "metadata": {**synthetic.METADATA, "name": f"Synthetic person {run}-{person}"},
                "size": 0,
                "etag": synthetic.ETAG,
                "faceCount": 1,
                "updatedAt": updated,
                "imageId": image_id,
            }
        )
    return faces, images


def _embedded(svc: Services, command: str):
    """The embedded collection and record store, which seeding writes in batches."""
    if svc.settings.engine != "local":
        raise ConfigurationError(
            f"{command} works on the embedded engine's archive only; stage {svc.settings.stage!r} uses "
            f"{svc.settings.engine}. Run it on the local stage (STAGE=local, the default)."
        )
    return svc.engine.collection, svc.records
