"""Deleted faces stay deleted: the faces a user removed from a photo
(DELETE /faces/{id}, an erasure that keeps a group photo), which no indexing
of that photo may bring back.

A FaceId names one indexing: the same photo indexed again (`make reindex`,
a repair, a restore, a collection rebuilt on AWS) gets new ones. So the
image record keeps, in `excluded`, each removed face as its photo's content
(the etag of the bytes it was indexed from) and its box. An indexing run
of those bytes finds the face again (IndexFaces cannot skip a face), takes
it out of the collection and commits without it (indexing._conclude): the
face is back in the collection for the moment of the run only, and never in
the records. The list travels with every write of the record; it goes with
the record when the photo is deleted."""

from chalicelib.core.errors import ServiceUnavailable
from chalicelib.core.people import overlap
from chalicelib.core.services import Services

# A face of a new indexing is the excluded one when their boxes overlap by
# more than this (intersection over union): the same bytes give the same
# box, within what another detector model moves it.
SAME_FACE_OVERLAP = 0.5
# The most kept on one record (the oldest go first): a photo holds at most
# 100 faces, and each replacement of its bytes starts afresh.
MAX_EXCLUDED = 200
WRITE_ROUNDS = 8


def carried(record: dict | None) -> dict:
    """The exclusions of `record`, for the record that replaces it."""
    excluded = (record or {}).get("excluded")
    return {"excluded": excluded} if excluded else {}


def exclude(svc: Services, key: str, faces: list[dict], moment: str, etag: str | None = None) -> bool:
    """Record these faces (face records, or anything with their
    BoundingBox) of the image `key` as removed for good, before they are
    deleted (so an indexing run that commits meanwhile leaves them out), for
    the bytes their faces were indexed from (or `etag`). False when the
    image record is gone."""
    for _ in range(WRITE_ROUNDS):
        image = svc.records.get_image(key)
        if image is None:
            return False
        etag = etag or image.get("facesEtag") or image["etag"]
        excluded = list(image.get("excluded", []))
        for face in faces:
            if not any(_same(entry, etag, face["BoundingBox"]) for entry in excluded):
                excluded.append({"etag": etag, "BoundingBox": face["BoundingBox"], "at": moment})
        if excluded == image.get("excluded", []):
            return True
        written = svc.records.put_image({**image, "excluded": excluded[-MAX_EXCLUDED:]}, image["revision"])
        if written is not None:
            return True
    raise ServiceUnavailable("The image kept changing while a face was being excluded; retry.")


def honour(svc: Services, base: dict | None, etag: str, faces: list[dict], image: dict) -> tuple[list[dict], dict]:
    """The faces an indexing run of the bytes `etag` may commit, and its
    image record to match: those the record `base` excludes leave the
    collection now, before the commit."""
    excluded = [entry for entry in (base or {}).get("excluded", []) if entry["etag"] == etag]
    if not excluded:
        return faces, image
    dropped = [face for face in faces if any(_same(entry, etag, face["BoundingBox"]) for entry in excluded)]
    if not dropped:
        return faces, image
    svc.engine.delete_faces([face["FaceId"] for face in dropped])
    kept = [face for face in faces if face not in dropped]
    image = {**image, "faceCount": len(kept)}
    if image["status"] in ("indexed", "no_faces"):
        image["status"] = "indexed" if kept else "no_faces"
    if kept:
        image["imageId"] = kept[0]["ImageId"]
    else:
        image.pop("imageId", None)
    return kept, image


def _same(entry: dict, etag: str, box: dict) -> bool:
    return entry["etag"] == etag and overlap(entry["BoundingBox"], box) > SAME_FACE_OVERLAP
