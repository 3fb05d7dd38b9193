"""Erasure: every trace of a person, gone for good, and a receipt that says so.

`DELETE /people/{id}` forgets who a person is but leaves their faces indexed
(a search still finds them, labelled by the photo's metadata). An erasure
(`POST /people/{id}/erase`, `make erase PERSON=`) removes:

- their faces: from the collection and the records, each recorded as
  excluded on its photo (core/exclusions.py), so no reindex, repair or
  restore brings it back;
- their name and id from every photo's metadata and image record (the
  `person` and `name` an enrolment by upload gave, and any metadata value
  that names them), by storing the photo again with the cleaned metadata
  (PhotoStore.replace_metadata: no version keeps the old);
- their Rekognition User, their faces from the saved suggestions;
- their photos, when asked: `photos=own` deletes the photos in which no one
  else's face is indexed (their portraits, and photos naming them with no
  other face); `photos=all` deletes every photo that showed them or named
  them, group photos too, with everyone else's faces in them. Without it
  (and for group photos under `own`) the photo stays, without their face
  and their name, and the receipt lists it: its pixels still show them;
- their person record: a tombstone holds only their id and the times.

It may be cut short anywhere (a crash, a time budget on AWS): the tombstone
holds the erasure under way (RecordStore.mark_erasure), with their name,
their faces and how far the scan of image records got; the same request
again carries on from there, and each step is safe to repeat (what is gone
already is counted once). The reply is a receipt: what was removed, the
photos kept, and the copies that remain and until when (Services.copies).
"""

import re
import time

from chalicelib.core import exclusions, indexing, people
from chalicelib.core.errors import BadRequest
from chalicelib.core.records import RUN_GRACE_SECONDS, iso_before
from chalicelib.core.services import Services

# photos=: keep them (none), delete those only they are in (own), delete all they are in (all).
PHOTO_CHOICES = ("none", "own", "all")
_RANK = {choice: rank for rank, choice in enumerate(PHOTO_CHOICES)}
SCAN_PAGE = 500
LISTED_AT_MOST = 100  # kept photos named in the receipt (the count says how many more)
MIN_NAME_CHARS = 3  # shorter names are matched whole only, never inside a longer text
_COUNTS = ("faces", "photos", "names", "records", "suggestions", "user")


def erase_person(
    svc: Services,
    person_id: str,
    photos: str = "none",
    name: str | None = None,
    budget_seconds: float | None = None,
) -> dict:
    """Erase the person (whatever is left of them: a person, a tombstone, a
    trace in some photo's metadata), or carry on with their erasure. `name`:
    their name when no record knows it (a person deleted before). With
    `budget_seconds`, it stops after the page of the scan that passes it,
    and the receipt says it is not complete: the same call again carries on."""
    people.validate_person_id(person_id)
    if photos not in PHOTO_CHOICES:
        raise BadRequest(f"photos must be one of {', '.join(PHOTO_CHOICES)} (true means own); got {photos!r}.")
    started = time.monotonic()
    erasure = svc.records.mark_erasure(
        person_id,
        {"since": svc.clock(), "photos": photos, "faces": [], "images": [], "kept": [], "removed": {}, "scan": None},
    )
    run = _Erasure(svc, person_id, erasure, erasure.get("name") or _clean_name(name))
    if _RANK[photos] > _RANK[erasure["photos"]]:  # asked again for more: the photos seen so far are seen again
        erasure.update(photos=photos, scan=None)
        run.save()
    run.faces()
    run.user()
    run.suggestions()
    complete = run.scan(started, budget_seconds)
    moment = svc.clock()
    if not complete:
        run.save()
        return run.receipt(complete, moment, [])
    svc.records.finish_erasure(person_id, moment)
    return run.receipt(complete, moment, svc.copies(moment))  # last: the log emptied after the last write


class _Erasure:
    """One call's work on an erasure; its progress is saved on the tombstone."""

    def __init__(self, svc: Services, person_id: str, erasure: dict, name: str | None) -> None:
        self.svc, self.person_id, self.erasure, self.name = svc, person_id, erasure, name
        self.removed = {count: erasure["removed"].get(count, 0) for count in _COUNTS}
        self.kept = list(erasure["kept"])

    def faces(self) -> None:
        """Their faces, by the records and by the collection (which may
        disagree after a crash), and the photos they are in."""
        svc, person_id = self.svc, self.person_id
        found = {face["FaceId"]: face for face in svc.records.faces_of_person(person_id)}
        user_faces = svc.people.faces_of_user(person_id) if svc.people is not None else []
        ids = sorted(set(self.erasure["faces"]) | set(found) | set(user_faces))
        records = {face_id: found.get(face_id) or svc.records.get_face(face_id) for face_id in ids}
        images = sorted(set(self.erasure["images"]) | {face["imageKey"] for face in records.values() if face})
        if ids != self.erasure["faces"] or images != self.erasure["images"]:
            self.erasure.update(faces=ids, images=images)
            self.save()  # before anything goes: a crash from here on still knows them
        for key in images:
            self.photo(key, held=True)
        # Faces in the collection that no record names (a crash between IndexFaces and a commit).
        self.svc.engine.delete_faces([face_id for face_id, face in records.items() if face is None])

    def user(self) -> None:
        if self.svc.people is not None and self.person_id in set(self.svc.people.list_users()):
            self.svc.people.delete_user(self.person_id)
            self.removed["user"] += 1

    def suggestions(self) -> None:
        """Their faces out of the saved suggested people, and they as anyone's nearest person."""
        saved = self.svc.records.get_suggestions()
        if not saved:
            return
        theirs, changed, kept = set(self.erasure["faces"]), 0, []
        for suggestion in saved["suggestions"]:
            faces = [face_id for face_id in suggestion["faceIds"] if face_id not in theirs]
            nearest = suggestion.get("nearestPerson")
            if nearest and nearest.get("personId") == self.person_id:
                nearest = None
            if faces == suggestion["faceIds"] and nearest == suggestion.get("nearestPerson"):
                kept.append(suggestion)
                continue
            changed += 1
            if faces:
                sample = suggestion["sampleFaceId"] if suggestion["sampleFaceId"] in faces else faces[0]
                kept.append({**suggestion, "faceIds": faces, "size": len(faces), "sampleFaceId": sample})
                kept[-1]["nearestPerson"] = nearest
        if changed:
            self.svc.records.save_suggestions({**saved, "suggestions": kept})
            self.removed["suggestions"] += changed

    def scan(self, started: float, budget_seconds: float | None) -> bool:
        """Every image record, a page at a time from where the last call
        stopped: the photos whose metadata or enrolment names them. False
        when the budget ran out first."""
        token = self.erasure["scan"]
        while token != "done":
            page = self.svc.records.list_images(SCAN_PAGE, token)
            for image in page.items:
                if self._names(image):
                    self.photo(image["key"], held=image["key"] in self.erasure["images"])
            token = page.next or "done"
            self.erasure["scan"] = token
            self.save()
            if budget_seconds is not None and time.monotonic() - started > budget_seconds and token != "done":
                return False
        return True

    def photo(self, key: str, held: bool) -> None:
        """One photo that showed them (`held`: one of their faces was in
        it) or names them: deleted, or kept without them."""
        svc = self.svc
        image = svc.records.get_image(key)
        stored = svc.photos.head(key)
        if image is None and stored is None:
            return
        faces = svc.records.faces_of(key)
        theirs = [face for face in faces if face["FaceId"] in set(self.erasure["faces"])]
        theirs += [face for face in faces if face.get("UserId") == self.person_id and face not in theirs]
        if not theirs and len(faces) == 1 and _enrolled_them(image, self.person_id):
            theirs = faces  # the face an upload enrolled as theirs (a person deleted before: no UserId left)
        others = [face for face in faces if face not in theirs]
        mode = self.erasure["photos"]
        if mode == "all" or (mode == "own" and not others):
            self._delete_photo(key, stored is not None, faces)
            return
        if theirs:
            exclusions.exclude(svc, key, theirs, svc.clock())
            svc.engine.delete_faces([face["FaceId"] for face in theirs])
            for face in theirs:
                svc.records.delete_face(face["FaceId"])
            self.removed["faces"] += len(theirs)
        if held and others and key not in self.kept:
            self.kept.append(key)
        self._clean(key)

    def _delete_photo(self, key: str, stored: bool, faces: list[dict]) -> None:
        """As DELETE /images/{key} does it (core/library.py): the photo, then its faces, then the records."""
        svc = self.svc
        svc.photos.delete(key)
        svc.engine.delete_faces([face["FaceId"] for face in faces])
        removed = svc.records.remove_image(key) or []
        svc.engine.delete_faces([face_id for face_id in removed if face_id not in {f["FaceId"] for f in faces}])
        self.removed["faces"] += sum(face["FaceId"] in set(self.erasure["faces"]) for face in faces)
        self.removed["photos"] += stored
        if key in self.kept:
            self.kept.remove(key)

    def _clean(self, key: str) -> None:
        """Their name out of the photo's metadata (a new version, no old one
        kept), then the record follows it (indexing.record_stored: the same
        bytes keep their faces; a new version drops the enrolment)."""
        svc = self.svc
        stored = svc.photos.head(key)
        if stored is None:
            image = svc.records.get_image(key)
            if image is not None and self._names(image):
                indexing.remove_photo(svc, key)  # the photo went: so does its record
            return
        clean = self._without_them(stored.metadata)
        if clean != stored.metadata:
            replaced = svc.photos.replace_metadata(key, stored.etag, clean)
            if replaced is None:
                return  # replaced or deleted meanwhile: the scan of a retry looks again
            if replaced.etag != stored.etag:  # copied as a whole (a photo put in parts): new bytes to exclude from
                self._follow_exclusions(key, stored.etag, replaced.etag)
            self.removed["names"] += len(stored.metadata) - len(clean)
            stored = replaced
        image = svc.records.get_image(key)
        if image is not None and self._names(image):
            indexing.record_stored(svc, stored)
            self.removed["records"] += 1

    def _follow_exclusions(self, key: str, old: str, new: str) -> None:
        image = self.svc.records.get_image(key)
        faces = [entry for entry in (image or {}).get("excluded", []) if entry["etag"] == old]
        if faces:
            exclusions.exclude(self.svc, key, faces, self.svc.clock(), etag=new)

    def _names(self, image: dict) -> bool:
        """Whether the image record names them: its metadata, or its enrolment."""
        if (image.get("enrolment") or {}).get("personId") == self.person_id:
            return True
        return self._without_them(image.get("metadata") or {}) != (image.get("metadata") or {})

    def _without_them(self, metadata: dict[str, str]) -> dict[str, str]:
        """The metadata less what names them: `person` when it is their id,
        `name` beside it, and any value that is or contains their name."""
        enrolled = metadata.get(people.PERSON_METADATA) == self.person_id
        return {
            field: value
            for field, value in metadata.items()
            if not (field == people.PERSON_METADATA and value == self.person_id)
            and not (field == people.NAME_METADATA and enrolled)
            and not _mentions(value, self.name)
        }

    def save(self) -> None:
        self.erasure.update(removed=dict(self.removed), kept=self.kept)
        self.svc.records.update_erasure(self.person_id, self.erasure)

    def receipt(self, complete: bool, moment: str, copies: list[dict]) -> dict:
        erasure = self.erasure
        kept = self.kept[:LISTED_AT_MOST]
        receipt = {
            "personId": self.person_id,
            "complete": complete,
            "found": erasure["found"],
            "photos": erasure["photos"],
            "startedAt": erasure["since"],
            "removed": {"person": int(erasure["found"] == "person"), **self.removed},
            "keptPhotos": kept,
            "keptPhotosNotListed": len(self.kept) - len(kept),
            "keysNamingThem": [key for key in self.kept if _key_names(key, self.name)][:LISTED_AT_MOST],
        }
        if self.name is None and erasure["found"] != "person":
            receipt["note"] = (
                "No record knew their name (deleted before): photos were cleaned of their id only. "
                "Give the name to clean it too (make erase PERSON=... NAME=...)."
            )
        if complete:
            receipt["erasedAt"] = moment
            receipt["tombstone"] = {"personId": self.person_id, "deletedAt": erasure["since"], "erasedAt": moment}
            receipt["copies"] = copies
        else:
            receipt["message"] = "Not finished within this request's time: send the same request again to carry on."
        return receipt


def finish_under_way(svc: Services, budget_seconds: float | None = None) -> list[str]:
    """Finish the erasures a crash, or a client that gave up on a 202, left
    under way (their tombstone still holds the name): those begun more than
    RUN_GRACE_SECONDS ago, which no request is still working on. The
    maintenance commands and the scheduled check call it. Returns their ids."""
    since = iso_before(svc.clock(), RUN_GRACE_SECONDS)
    started, done = time.monotonic(), []
    for under_way in svc.records.erasures_under_way():
        if under_way["since"] >= since:
            continue
        left = None if budget_seconds is None else max(0.0, budget_seconds - (time.monotonic() - started))
        if erase_person(svc, under_way["personId"], under_way["photos"], budget_seconds=left)["complete"]:
            done.append(under_way["personId"])
    return done


def check_erased(svc: Services, person_id: str, name: str | None = None) -> list[str]:
    """What of the person the archive still holds (nothing, after a complete
    erasure): a person or an erasure under way, faces given to them in the
    records or the collection, a User, a photo or image record naming them
    (by id, and by `name` if given), a suggestion of theirs."""
    people.validate_person_id(person_id)
    found = []
    if svc.records.get_person(person_id) is not None:
        found.append("a person record (they were never erased, or were made again since)")
    if svc.records.faces_of_person(person_id):
        found.append(f"{len(svc.records.faces_of_person(person_id))} face record(s) given to them")
    if svc.people is not None:
        if svc.people.faces_of_user(person_id):
            found.append(f"{len(svc.people.faces_of_user(person_id))} face(s) of their User in the collection")
        if person_id in set(svc.people.list_users()):
            found.append("a User in the collection")
    probe = _Erasure(svc, person_id, {"removed": {}, "kept": [], "faces": []}, _clean_name(name))
    naming = [image["key"] for image in _all_images(svc) if probe._names(image)]
    if naming:
        found.append(f"{len(naming)} image record(s) naming them: {', '.join(naming[:5])}")
    saved = svc.records.get_suggestions() or {"suggestions": []}
    if any((s.get("nearestPerson") or {}).get("personId") == person_id for s in saved["suggestions"]):
        found.append("a suggested person naming them as the nearest")
    return found


def _enrolled_them(image: dict | None, person_id: str) -> bool:
    enrolment = (image or {}).get("enrolment") or {}
    return enrolment.get("personId") == person_id and enrolment.get("status") == "associated"


def _all_images(svc: Services):
    token = None
    while True:
        page = svc.records.list_images(SCAN_PAGE, token)
        yield from page.items
        if page.next is None:
            return
        token = page.next


def _clean_name(name: str | None) -> str | None:
    return name.strip() or None if isinstance(name, str) else None


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.casefold()))


def _mentions(value: str, name: str | None) -> bool:
    """Whether a metadata value is the name, or holds it as whole words."""
    if not name or not isinstance(value, str):
        return False
    wanted, words = _words(name), _words(value)
    if not wanted:
        return False
    if words == wanted:
        return True
    return len(wanted) >= MIN_NAME_CHARS and f" {wanted} " in f" {words} "


def _key_names(key: str, name: str | None) -> bool:
    """Whether a photo's key (its file name) holds a word of the name."""
    if not name:
        return False
    words = {word for word in _words(name).split() if len(word) >= MIN_NAME_CHARS}
    return bool(words & set(_words(key.replace("_", " ")).split()))
