"""Searching: whose face is this, and who is in this photo. A match whose
face belongs to a person is labelled with the person's name and carries
their personId. Without a threshold from the client, a search uses the
default for the archive's size, and every match says how much to trust it
(core/naming.py)."""

from chalicelib.core import limits, naming
from chalicelib.core.images import prepare_search
from chalicelib.core.labels import label_for
from chalicelib.core.services import Services


def naming_for(svc: Services, threshold: float | None) -> naming.Naming:
    """The threshold a search uses (the client's, or the default for the
    archive's size) and how its matches are judged."""
    return naming.decide(svc.engine.face_count(), svc.engine.stranger_model(), threshold)


def search_image(svc: Services, data: bytes, threshold: float | None, max_matches: int) -> dict:
    """Who is the largest face in this photo?"""
    data = prepare_search(data)
    names = naming_for(svc, threshold)
    result, matches = search_and_join(
        svc, lambda limit: [svc.engine.search_faces_by_image(data, names.threshold, limit)], max_matches, names
    )[0]
    return {
        "faces": result,
        "matchedFaces": [match["label"] for match in matches],
        "matches": matches,
        **names.reply(),
    }


def search_every_face(svc: Services, data: bytes, threshold: float | None, max_matches: int) -> dict:
    """Who is in this photo? Every face found, largest first, with its matches."""
    data = prepare_search(data)
    names = naming_for(svc, threshold)
    results = search_and_join(
        svc, lambda limit: svc.engine.search_all_faces_by_image(data, names.threshold, limit), max_matches, names
    )
    return {
        "faces": [result for result, _ in results],
        "searchedFaces": [
            {
                "BoundingBox": result["SearchedFaceBoundingBox"],
                "Confidence": result["SearchedFaceConfidence"],
                "matchedFaces": [match["label"] for match in matches],
                "matches": matches,
            }
            for result, matches in results
        ],
        **names.reply(),
    }


def search_and_join(svc: Services, search, max_matches: int, names: naming.Naming) -> list[tuple[dict, list[dict]]]:
    """Each search result with its matches' records, read in one batch, each
    match judged by `names`.
    Matches whose records are gone (a face deleted or replaced meanwhile,
    or a collection face a crash left without a record) are left out; when
    that leaves fewer than asked while the engine had more, ask it again for
    more, so such faces never hide a real match."""
    limit = max_matches
    while True:
        results = search(limit)
        joined = _join_records(svc, results, max_matches, names)
        short = any(
            len(matches) < max_matches and len(result["FaceMatches"]) >= limit
            for (_, matches), result in zip(joined, results, strict=True)
        )
        if not short or limit >= limits.MAX_MATCHES:
            return joined
        limit = min(limits.MAX_MATCHES, limit * 2)


def _join_records(
    svc: Services, results: list[dict], max_matches: int, names: naming.Naming
) -> list[tuple[dict, list[dict]]]:
    found = svc.records.find_faces(
        list({match["Face"]["FaceId"] for result in results for match in result["FaceMatches"]})
    )
    people = svc.records.find_people(sorted({face["UserId"] for face, _ in found.values() if face.get("UserId")}))
    joined = []
    for result in results:
        kept = [match for match in result["FaceMatches"] if match["Face"]["FaceId"] in found][:max_matches]
        matches = []
        for match in kept:
            face, metadata = found[match["Face"]["FaceId"]]
            person = people.get(face.get("UserId"))
            matches.append(
                {
                    "FaceId": face["FaceId"],
                    "Similarity": match["Similarity"],
                    "BoundingBox": face["BoundingBox"],
                    "imageKey": face["imageKey"],
                    "metadata": metadata,
                    "label": person["name"] if person else label_for(face["imageKey"], metadata),
                    **({"personId": person["personId"]} if person else {}),
                    **names.judge(match["Similarity"]),
                }
            )
        joined.append(({**result, "FaceMatches": [_with_person(match, found, people) for match in kept]}, matches))
    return joined


def _with_person(match: dict, found: dict, people: dict) -> dict:
    """The Rekognition-shaped match, its Face carrying UserId as the
    records say (Rekognition's own does; the embedded collection's not)."""
    face = {name: value for name, value in match["Face"].items() if name != "UserId"}
    user_id = found[face["FaceId"]][0].get("UserId")
    if user_id in people:
        face["UserId"] = user_id
    return {**match, "Face": face}
