"""People: name someone once, find them everywhere.

A person is a Rekognition User in the engine's collection (UserId =
personId) and a person record beside the image and face records. The
engine holds the truth about which faces belong to whom (it refuses a face
that belongs to someone else or does not look like the person); the
records follow it, written after the engine, so a request that fails
halfway is finished by the same request again.
"""

import contextlib
import logging
from itertools import islice

from chalicelib.core import clustering, limits, naming
from chalicelib.core.errors import BadRequest, ImageRejected, NotFound, ServiceUnavailable, UnsupportedMediaType
from chalicelib.core.images import PHOTO_TYPES, prepare_search
from chalicelib.core.records import same_record_version
from chalicelib.core.searching import search_and_join, threshold_fields
from chalicelib.core.services import Services
from chalicelib.core.text import hidden_characters

log = logging.getLogger("faceprint")

WRITE_ROUNDS = 8
# Enrol by upload: the metadata that names the person, and their name.
PERSON_METADATA, NAME_METADATA = "person", "name"


# GET /people/suggestions names the suggestions: no person may be called that.
RESERVED_IDS = frozenset({"suggestions"})


def validate_person_id(person_id: str) -> str:
    if person_id in RESERVED_IDS:
        raise BadRequest(f"{person_id!r} is reserved (GET /people/{person_id}): choose another personId.")
    if person_id in (".", ".."):
        raise BadRequest(f"A personId cannot be {person_id!r}: a browser would not send it in a URL path.")
    if not isinstance(person_id, str) or not limits.PERSON_ID.fullmatch(person_id):
        raise BadRequest(
            f"A personId is 1 to 128 characters of a-z, A-Z, 0-9, '_', '.', '-' and ':' "
            f"(Rekognition's UserId rule); got {str(person_id)[:140]!r}."
        )
    return person_id


def validate_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise BadRequest('Send the person\'s name as JSON: {"name": "Keanu Reeves"}.')
    name = name.strip()
    if len(name) > limits.MAX_PERSON_NAME_CHARS:
        raise BadRequest(f"A name is at most {limits.MAX_PERSON_NAME_CHARS} characters.")
    hidden = hidden_characters(name)
    if hidden:
        raise BadRequest(
            "A name must not contain control or invisible formatting characters "
            f"(bidi overrides, zero-width spaces); it has {', '.join(hidden[:5])}."
        )
    return name


def put_person(svc: Services, person_id: str, name: str, not_deleted_since: str | None = None) -> tuple[dict, bool]:
    """Create the person (and their User), or rename them. Returns the
    person record and whether it was created. `not_deleted_since`: create
    them only if they were not deleted since then (enrolment by upload
    never brings back a person deleted after the photo was uploaded)."""
    person_id, name = validate_person_id(person_id), validate_name(name)
    for _ in range(WRITE_ROUNDS):
        if svc.records.get_person(person_id) is not None:
            renamed = svc.records.rename_person(person_id, name, svc.clock())
            if renamed is not None:
                return renamed, False
            continue  # deleted meanwhile: create it
        moment = svc.clock()
        person = {"personId": person_id, "name": name, "faceCount": 0, "createdAt": moment, "updatedAt": moment}
        created = svc.records.create_person(person, not_deleted_since)
        if created is not None:
            # The User after the record; a crash in between is a person_without_user that repair finishes.
            if not sync_user(svc, person_id):
                raise NotFound(f"Person {person_id!r} was deleted while being created.")
            return created, True
        if not_deleted_since is not None and svc.records.get_person(person_id) is None:
            raise NotFound(f"Person {person_id!r} was deleted after {not_deleted_since}.")
    raise ServiceUnavailable(f"Person {person_id!r} kept changing while being written; retry.")


def list_people(svc: Services, limit: int, token: str | None) -> dict:
    page = svc.records.list_people(limit, token)
    return {"people": page.items, "next": page.next}


def get_person(svc: Services, person_id: str) -> dict:
    return {"person": _person(svc, person_id), "faces": svc.records.faces_of_person(person_id)}


def faces_of_person(svc: Services, person_id: str) -> dict:
    _person(svc, person_id)
    return {"faces": svc.records.faces_of_person(person_id), "next": None}


def delete_person(svc: Services, person_id: str) -> dict:
    """The record first (it becomes a tombstone: the person is gone from
    every read, their faces stay indexed without them), then the User: if
    the second step fails, the same request again finishes the job (and
    the scheduled check would too)."""
    validate_person_id(person_id)
    faces = svc.records.remove_person(person_id, svc.clock())
    if faces is None:
        if svc.records.person_deleted_at(person_id) is not None:
            sync_user(svc, person_id)  # a delete that stopped halfway
        raise NotFound(f"No person {person_id!r}: already deleted?")
    if sync_user(svc, person_id) and faces:  # made again meanwhile: their User stayed, with these faces
        _leave_user(svc, person_id, faces)
    return {"deleted": {"personId": person_id, "faces": len(faces)}}


def _leave_user(svc: Services, person_id: str, face_ids: list[str]) -> None:
    """The faces a delete took from a person's records leave their User too,
    when the User stayed because the person was made again meanwhile (so
    DeleteUser never took them along), unless the records give a face to
    the person again by now."""
    theirs = {face["FaceId"] for face in svc.records.faces_of_person(person_id)}
    taken = [face_id for face_id in face_ids if face_id not in theirs]
    if taken:
        with contextlib.suppress(NotFound):  # the User went meanwhile, and its faces with it
            svc.people.disassociate_faces(person_id, taken)


def sync_user(svc: Services, person_id: str) -> bool:
    """Make the person's User agree with their record, whatever runs beside:
    every writer of a person record (put_person, delete_person) calls this
    after its write, and repair calls it for a User that disagrees. Each step on the User (create it, or delete
    it) is taken on a fresh read of the record and followed by another, until
    the record stood still across the step. So the last step on the User was
    taken on what the record still is: a write of the record after it is
    followed by its writer's own steps. A User made, made again after
    another writer's delete (which takes its faces along), gets the faces
    the records give the person. Returns whether the person exists."""
    exists = svc.records.get_person(person_id) is not None
    for _ in range(WRITE_ROUNDS):
        if exists:
            svc.people.create_user(person_id)
            faces = [face["FaceId"] for face in svc.records.faces_of_person(person_id)]
            if faces:
                with contextlib.suppress(NotFound):  # deleted by another writer, whose own steps come after
                    svc.people.associate_faces(person_id, faces, 0.0)
        else:
            svc.people.delete_user(person_id)
        still = svc.records.get_person(person_id) is not None
        if still == exists:
            return exists
        exists = still
    raise ServiceUnavailable(f"Person {person_id!r} kept changing while their User was being written; retry.")


def associate_faces(svc: Services, person_id: str, face_ids, threshold: float) -> dict:
    """AssociateFaces: each face joins the person unless it is unknown,
    someone else's, or does not look like the person's other faces."""
    if (
        not isinstance(face_ids, list)
        or not 1 <= len(face_ids) <= limits.MAX_FACES_PER_ASSOCIATION
        or not all(isinstance(i, str) and 0 < len(i) <= 128 for i in face_ids)
    ):
        raise BadRequest(
            f'Send {{"faceIds": [...]}} with 1 to {limits.MAX_FACES_PER_ASSOCIATION} FaceIds (strings), '
            'and optionally "threshold" (0-100).'
        )
    person = _person(svc, person_id)
    face_ids = list(dict.fromkeys(face_ids))
    records = svc.records.find_faces(face_ids)
    unknown = [{"FaceId": i, "Reasons": ["FACE_NOT_FOUND"]} for i in face_ids if i not in records]
    asked = [i for i in face_ids if i in records]
    new = [i for i in asked if records[i][0].get("UserId") != person_id]
    if person["faceCount"] + len(new) > limits.MAX_FACES_PER_PERSON:
        raise BadRequest(
            f"Person {person_id!r} has {person['faceCount']} faces; a person has at most "
            f"{limits.MAX_FACES_PER_PERSON} (Rekognition's limit): disassociate some first."
        )
    result = _associate_in_engine(svc, person_id, asked, threshold) if asked else {}
    associated = [face["FaceId"] for face in result.get("AssociatedFaces", [])]
    written = svc.records.associate_faces(person_id, associated) if associated else []
    if written is None:
        raise NotFound(f"Person {person_id!r} was deleted meanwhile.")
    gone = [{"FaceId": i, "Reasons": ["FACE_NOT_FOUND"]} for i in associated if i not in set(written)]
    return {
        "person": _person(svc, person_id),
        "associatedFaces": [{"FaceId": i} for i in written],
        "unsuccessfulFaceAssociations": unknown + result.get("UnsuccessfulFaceAssociations", []) + gone,
    }


def disassociate_face(svc: Services, person_id: str, face_id: str) -> dict:
    """ "Not this person". An enrolment by upload of the face's photo into
    the same person that has not finished yet (a crash left it owed) is
    settled too: what the user said last stands."""
    _person(svc, person_id)
    face = svc.records.get_face(face_id)
    if face is None or face.get("UserId") != person_id:
        raise NotFound(f"Face {face_id!r} is not a face of person {person_id!r}.")
    _settle_enrolment(svc, face["imageKey"], person_id)
    svc.people.disassociate_faces(person_id, [face_id])
    done = svc.records.disassociate_faces(person_id, [face_id])
    follow_the_collection(svc, [face_id])
    return {"person": _person(svc, person_id), "disassociatedFaces": [{"FaceId": i} for i in done]}


def follow_the_collection(svc: Services, face_ids: list[str]) -> None:
    """Each face record's person becomes the one the collection says, read
    again after the write until the collection stood still across it.
    "Not this person" and repair call this after their writes (the
    collection's, then the records'): a give and a take of one face side
    by side may interleave theirs (the collection's in one order, the
    records' in the other), and the take's last write follows the
    collection as it stands. A give needs none: it writes the records only
    for faces the collection newly gave (AssociateFaces leaves out a face
    already the person's), which only a take can change before the give's
    records write, and the take follows after its own."""
    for face_id in face_ids:
        for _ in range(WRITE_ROUNDS):
            owner = svc.people.owners([face_id])
            if face_id not in owner:
                break  # not in the collection: record_without_face, for the indexing to settle
            face = svc.records.get_face(face_id)
            if face is None:
                break
            if owner[face_id] is not None and svc.records.get_person(owner[face_id]) is not None:
                if face.get("UserId") != owner[face_id]:
                    svc.records.associate_faces(owner[face_id], [face_id])
            elif face.get("UserId"):
                svc.records.disassociate_faces(face["UserId"], [face_id])
            if svc.people.owners([face_id]).get(face_id) == owner[face_id]:
                break


def _settle_enrolment(svc: Services, key: str, person_id: str) -> None:
    image = svc.records.get_image(key)
    if image is None or image.get("metadata", {}).get(PERSON_METADATA) != person_id:
        return
    if image.get("enrolment", {}).get("personId") == person_id:
        return
    message = "The face was taken from the person ('not this person') before the enrolment by upload finished."
    _record_enrolment(svc, image, {"personId": person_id, **_refused(message)})


def search_people(svc: Services, data: bytes, threshold: float | None, max_people: int) -> dict:
    """SearchUsersByImage: who is the largest face of this photo? A
    person deleted while the search ran is left out. Without a threshold,
    the people from the base threshold (80). Each person found is judged as
    /search judges their identity (core/naming.py), on the same face's
    nearest faces: a person is named (`confident`) only when they stand
    above the strangers and clear of everyone else."""
    data = prepare_search(data)
    shown_from = naming.BASE_THRESHOLD if threshold is None else threshold
    result = svc.people.search_users_by_image(data, shown_from, max_people)
    found = svc.records.find_people([match["User"]["UserId"] for match in result["UserMatches"]])
    matches = [match for match in result["UserMatches"] if match["User"]["UserId"] in found]
    judged = _judged_people(svc, data) if matches else {}
    people = []
    for match in matches:
        person_id = match["User"]["UserId"]
        judgement = judged.get(person_id)
        people.append(
            {
                "personId": person_id,
                "name": found[person_id]["name"],
                "similarity": match["Similarity"],
                **(_figures(judgement) if judgement else _unseen(svc, match["Similarity"])),
            }
        )
    return {**result, "UserMatches": matches, "people": people, **threshold_fields(svc, threshold)}


def _judged_people(svc: Services, data: bytes) -> dict[str, naming.Judgement]:
    """How the face search of the same photo judges each person's identity."""
    (face,) = search_and_join(
        svc, lambda limit: [svc.engine.search_faces_by_image(data, 0.0, limit)], limits.DEFAULT_MAX_MATCHES, None
    )
    return {j.identity.person_id: j for j in face.judgements if j.identity.person_id}


def _figures(judgement: naming.Judgement) -> dict:
    figures = judgement.as_dict()
    return {name: figures[name] for name in ("expectedStrangers", "confident", "margin", "runnerUp", "reason")}


def _unseen(svc: Services, similarity: float) -> dict:
    """A person the face search did not reach (their faces are not among
    the nearest): never named."""
    expected = naming.expected_strangers(similarity, svc.engine.face_count(), svc.engine.stranger_model())
    return {
        "expectedStrangers": naming.significant(expected),
        "confident": False,
        "margin": None,
        "runnerUp": None,
        "reason": "none of their faces is among the nearest faces",
    }


def face_matches(svc: Services, face_id: str, threshold: float | None, max_matches: int) -> dict:
    """SearchFaces: the faces like a stored one, never itself, judged as
    /search judges them."""
    if svc.records.get_face(face_id) is None:
        raise NotFound(f"No face {face_id!r}.")

    def search(limit: int) -> list[dict]:
        result = svc.people.search_faces(face_id, 0.0, min(limits.MAX_MATCHES, limit + 1))
        matches = [m for m in result["FaceMatches"] if m["Face"]["FaceId"] != face_id][:limit]
        return [{**result, "FaceMatches": matches}]

    (found,) = search_and_join(svc, search, max_matches, threshold)
    return {**found.result, **found.reply(), **threshold_fields(svc, threshold)}


def compare(svc: Services, source: bytes, target: bytes, threshold: float) -> dict:
    """CompareFaces: is the largest face of the source in the target?"""
    return svc.people.compare_faces(_photo(source, "source"), _photo(target, "target"), threshold)


def suggest_people(svc: Services, min_faces: int) -> dict:
    """Group the faces that belong to no person by how alike they are, and
    save the groups; each with the person its most typical face looks like."""
    unassigned = list(
        islice((face["FaceId"] for face in _all_faces(svc) if not face.get("UserId")), limits.MAX_SUGGESTION_FACES + 1)
    )
    more = len(unassigned) > limits.MAX_SUGGESTION_FACES
    unassigned = unassigned[: limits.MAX_SUGGESTION_FACES]
    graph = svc.people.similar_faces(unassigned, limits.DEFAULT_THRESHOLD)
    suggestions = []
    for group in clustering.suggest_groups(unassigned, graph, limits.DEFAULT_MIN_FACES):
        sample = clustering.medoid(group, graph)
        suggestions.append(
            {
                "suggestionId": clustering.suggestion_id(group),
                "faceIds": group,
                "size": len(group),
                "sampleFaceId": sample,
                "nearestPerson": _nearest_person(svc, sample),
            }
        )
    saved = {
        "suggestions": suggestions,
        "computedAt": svc.clock(),
        "facesConsidered": len(unassigned),
        "moreFaces": more,
        "threshold": limits.DEFAULT_THRESHOLD,
    }
    svc.records.save_suggestions(saved)
    return _current(svc, saved, min_faces)


def list_suggestions(svc: Services, min_faces: int) -> dict:
    saved = svc.records.get_suggestions() or {
        "suggestions": [],
        "computedAt": None,
        "facesConsidered": 0,
        "moreFaces": False,
        "threshold": limits.DEFAULT_THRESHOLD,
    }
    return _current(svc, saved, min_faces)


def enrol_from_upload(svc: Services, image: dict) -> dict:
    """Enrol by upload (`x-amz-meta-person`): once the photo is indexed,
    its one face joins that person (created, named from `x-amz-meta-name`
    or else their id, if new). The image record says how it went in
    `enrolment`: {"personId", "status": "associated" | "refused", "message"},
    once per upload (a reindex of the same version does not enrol again).
    A person deleted after the photo was uploaded is not brought back.
    Returns the image record as it leaves it."""
    person_id = image.get("metadata", {}).get(PERSON_METADATA)
    if not person_id or image["status"] not in ("indexed", "no_faces"):
        return image
    done = image.get("enrolment", {})
    if done.get("personId") == person_id:
        return image  # this upload's enrolment was done by an earlier run
    outcome = _enrol(svc, image, person_id)
    return _record_enrolment(svc, image, {"personId": person_id, **outcome})


def _enrol(svc: Services, image: dict, person_id: str) -> dict:
    try:
        validate_person_id(person_id)
    except BadRequest as e:
        return _refused(f"x-amz-meta-person: {e.message}")
    faces = svc.records.faces_of(image["key"])
    if len(faces) != 1:
        return _refused(f"The photo has {len(faces)} faces; enrolling by upload needs exactly one.")
    name = image["metadata"].get(NAME_METADATA) or person_id
    uploaded = image.get("uploadedAt") or image["updatedAt"]
    try:
        if svc.records.get_person(person_id) is None:
            put_person(svc, person_id, name[: limits.MAX_PERSON_NAME_CHARS], not_deleted_since=uploaded)
        latest = svc.records.get_image(image["key"])
        if latest is not None and latest.get("enrolment", {}).get("personId") == person_id:
            # Another run of this upload enrolled it meanwhile (and the user may
            # have said "not this person" since): its outcome stands.
            return {name: latest["enrolment"][name] for name in ("status", "message") if name in latest["enrolment"]}
        result = associate_faces(svc, person_id, [faces[0]["FaceId"]], limits.DEFAULT_ASSOCIATE_THRESHOLD)
    except NotFound:
        return _refused(f"Person {person_id!r} was deleted after this photo was uploaded.")
    except BadRequest as e:
        return _refused(e.message)
    refused = result["unsuccessfulFaceAssociations"]
    if refused:
        reasons = ", ".join(refused[0]["Reasons"])
        return _refused(f"Rekognition's AssociateFaces refused the face: {reasons}.")
    return {"status": "associated", "message": f"The photo's face is a face of person {person_id!r}."}


def retire_faces(svc: Services, retire: list[str], carry: dict[str, dict]) -> None:
    """Take faces out of the collection. `carry` maps some of them to the
    face of a new indexing of the same photo that stands on them
    ({"FaceId", "UserId": the person the records gave the old face}): each
    new face first joins the person the old one belongs to, as the
    collection says (it holds the truth about whose face is whose), or as
    the records said when the collection no longer has the old face (a
    collection rebuilt after a restore). Done again after a crash, it
    finishes the job."""
    engine = svc.people.owners(list(carry)) if carry and svc.people is not None else {}
    # A face a carry lands on may itself be retired here (two runs of one
    # photo, the second committed before the first carried its people
    # over): the person goes on to where that face is carried. Faces that
    # are such a stop first: an owner given to them since stands.
    for old in sorted(carry, key=lambda face_id: not _carried_to(carry, face_id)):
        new = _last_stop(carry, carry[old])
        person_id = engine[old] if old in engine else carry[old].get("UserId")
        if person_id and svc.records.get_person(person_id) is not None:
            _carry(svc, person_id, old, new["FaceId"])
    svc.engine.delete_faces(retire)


def _carried_to(carry: dict[str, dict], face_id: str) -> bool:
    return any(new["FaceId"] == face_id for new in carry.values())


def _last_stop(carry: dict[str, dict], new: dict) -> dict:
    """Where a carry ends: past every face on the way that is retired too."""
    seen: set[str] = set()
    while new["FaceId"] in carry and new["FaceId"] not in seen:
        seen.add(new["FaceId"])
        new = carry[new["FaceId"]]
    return new


def _carry(svc: Services, person_id: str, old: str, new: str) -> None:
    try:
        try:
            result = _associate_in_engine(svc, person_id, [new], 0.0)
        except BadRequest:  # the person has their 100 faces, the old one among them: make room first
            svc.people.disassociate_faces(person_id, [old])
            result = _associate_in_engine(svc, person_id, [new], 0.0)
    except (BadRequest, NotFound) as e:
        log.warning("a face indexed again could not rejoin its person: %s", e.code)
        return
    if new not in {failure["FaceId"] for failure in result.get("UnsuccessfulFaceAssociations", [])}:
        svc.records.associate_faces(person_id, [new])


def overlap(a: dict, b: dict) -> float:
    """Intersection over union of two boxes."""
    width = min(a["Left"] + a["Width"], b["Left"] + b["Width"]) - max(a["Left"], b["Left"])
    height = min(a["Top"] + a["Height"], b["Top"] + b["Height"]) - max(a["Top"], b["Top"])
    shared = max(0.0, width) * max(0.0, height)
    union = a["Width"] * a["Height"] + b["Width"] * b["Height"] - shared
    return shared / union if union > 0 else 0.0


def _refused(message: str) -> dict:
    return {"status": "refused", "message": message}


def _record_enrolment(svc: Services, image: dict, enrolment: dict) -> dict:
    """Compare-and-set the outcome onto the image record, unless another
    version of the photo took over meanwhile."""
    current = image
    for _ in range(WRITE_ROUNDS):
        if current is None or not same_record_version(current, image):
            return current
        written = svc.records.put_image({**current, "enrolment": enrolment}, current["revision"])
        if written is not None:
            return written
        current = svc.records.get_image(image["key"])
    log.warning("could not record an enrolment by upload: %s (the record kept changing)", enrolment["status"])
    return current


def _associate_in_engine(svc: Services, person_id: str, face_ids: list[str], threshold: float) -> dict:
    """AssociateFaces; a person whose User is missing from the collection
    (made again, or copied from another stage) gets it back first."""
    try:
        return svc.people.associate_faces(person_id, face_ids, threshold)
    except NotFound:
        if not sync_user(svc, person_id):
            raise NotFound(f"Person {person_id!r} was deleted meanwhile.") from None
        return svc.people.associate_faces(person_id, face_ids, threshold)


def _person(svc: Services, person_id: str) -> dict:
    person = svc.records.get_person(validate_person_id(person_id))
    if person is None:
        raise NotFound(f"No person {person_id!r}: PUT /people/{{personId}} creates one.")
    return person


def _photo(data: bytes, which: str) -> bytes:
    """A photo of /compare's JSON body: its errors name it, and say what
    a photo may be, without the HTTP body types (image/jpeg, text/plain,
    ...) that do not apply to a field of JSON."""
    try:
        return prepare_search(data)
    except UnsupportedMediaType as e:
        raise UnsupportedMediaType(f"The {which} image: send {PHOTO_TYPES}, as its base64 text.") from e
    except ImageRejected as e:
        raise type(e)(f"The {which} image: {e.message}") from e


def _nearest_person(svc: Services, face_id: str) -> dict | None:
    try:
        found = svc.people.search_users(face_id, limits.DEFAULT_THRESHOLD, 5)["UserMatches"]
    except NotFound:
        return None
    people = svc.records.find_people([match["User"]["UserId"] for match in found])
    for match in found:
        if match["User"]["UserId"] in people:
            return {"personId": match["User"]["UserId"], "similarity": match["Similarity"]}
    return None


def _current(svc: Services, saved: dict, min_faces: int) -> dict:
    """The saved groups as they stand: faces since given to a person, or
    deleted, are left out, and groups left smaller than `min_faces` too."""
    ids = [face_id for suggestion in saved["suggestions"] for face_id in suggestion["faceIds"]]
    found = svc.records.find_faces(ids)
    free = {face_id for face_id, (face, _) in found.items() if not face.get("UserId")}
    current = []
    for suggestion in saved["suggestions"]:
        faces = [face_id for face_id in suggestion["faceIds"] if face_id in free]
        if len(faces) < min_faces:
            continue
        sample = suggestion["sampleFaceId"] if suggestion["sampleFaceId"] in free else faces[0]
        current.append({**suggestion, "faceIds": faces, "size": len(faces), "sampleFaceId": sample})
    current.sort(key=lambda suggestion: (-suggestion["size"], suggestion["faceIds"][0]))
    return {"moreFaces": False, **saved, "suggestions": current, "minFaces": min_faces}


def _all_faces(svc: Services):
    token = None
    while True:
        page = svc.records.list_faces(limits.MAX_PAGE_SIZE, token)
        yield from page.items
        if page.next is None:
            return
        token = page.next
