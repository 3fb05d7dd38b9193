"""Searching: whose face is this, and who is in this photo. A match whose
face belongs to a person is labelled with the person's name and carries
their personId. Each search asks the engine for the nearest faces whatever
their similarity (CONTEXT_FACES more than it shows), groups them into
identities and judges them (core/naming.py): without a threshold from the
client, it shows the identities that stand above the strangers and the
likeliest one; with one, every match at or above it. `matchedFaces` lists
the labels of the matches the rule names (with a threshold, of every match,
as it always has)."""

from dataclasses import dataclass

from chalicelib.core import limits, naming
from chalicelib.core.images import prepare_search
from chalicelib.core.labels import label_for
from chalicelib.core.services import Services

# Faces asked for beyond those a reply shows: enough to see the identity
# after the best one (asked again with more if they are all one identity's).
CONTEXT_FACES = 20
GROWTH = 8


@dataclass(frozen=True)
class Searched:
    """One searched face: its Rekognition-shaped result (FaceMatches: the
    matches shown), the matches joined with their records and judged, the
    labels named, and the identities shown with the rule's figures."""

    result: dict
    matches: list[dict]
    named: list[str]
    identities: list[naming.Judgement]
    judgements: list[naming.Judgement]  # every identity seen, shown or not

    def reply(self) -> dict:
        return {
            "matchedFaces": self.named,
            "matches": self.matches,
            "identities": [judgement.as_dict() for judgement in self.identities],
        }


def search_image(svc: Services, data: bytes, threshold: float | None, max_matches: int) -> dict:
    """Who is the largest face in this photo?"""
    data = prepare_search(data)
    (found,) = search_and_join(
        svc, lambda limit: [svc.engine.search_faces_by_image(data, 0.0, limit)], max_matches, threshold
    )
    return {"faces": found.result, **found.reply(), **threshold_fields(svc, threshold)}


def search_every_face(svc: Services, data: bytes, threshold: float | None, max_matches: int) -> dict:
    """Who is in this photo? Every face found, largest first, with its matches."""
    data = prepare_search(data)
    results = search_and_join(
        svc, lambda limit: svc.engine.search_all_faces_by_image(data, 0.0, limit), max_matches, threshold
    )
    return {
        "faces": [found.result for found in results],
        "searchedFaces": [
            {
                "BoundingBox": found.result["SearchedFaceBoundingBox"],
                "Confidence": found.result["SearchedFaceConfidence"],
                **found.reply(),
            }
            for found in results
        ],
        **threshold_fields(svc, threshold),
    }


def threshold_fields(svc: Services, threshold: float | None) -> dict:
    """The reply's `threshold` (the client's, or the default's lowest
    similarity shown) and `thresholdReason`."""
    reason = naming.reason(threshold, svc.engine.face_count(), svc.engine.stranger_model())
    return {"threshold": naming.BASE_THRESHOLD if threshold is None else threshold, "thresholdReason": reason}


def search_and_join(svc: Services, search, max_matches: int, threshold: float | None) -> list[Searched]:
    """Each result of `search(limit)` (the engine's nearest faces, at most
    `limit`, whatever their similarity) with its matches' records, read in
    one batch, and judged. Matches whose records are gone (a face deleted or
    replaced meanwhile, or a collection face a crash left without a record)
    are left out; when the engine's list was full and that leaves fewer
    matches than asked, or only one identity to judge, ask it again for
    GROWTH times more (at most MAX_MATCHES: then whoever it left out scores
    at most the lowest it returned), so such faces never hide a match or
    the runner-up. A photo of a person with hundreds of near-identical
    photos costs a few such rounds, each a whole search of the photo again."""
    faces, model = svc.engine.face_count(), svc.engine.stranger_model()
    limit = min(limits.MAX_MATCHES, max_matches + CONTEXT_FACES)
    while True:
        results = search(limit)
        joined = _join_records(svc, results)
        found = [
            _judge(result, matches, limit, max_matches, threshold, faces, model)
            for result, matches in zip(results, joined, strict=True)
        ]
        if not any(short for _, short in found) or limit >= limits.MAX_MATCHES:
            return [searched for searched, _ in found]
        limit = min(limits.MAX_MATCHES, limit * GROWTH)


def _judge(
    result: dict,
    matches: list[dict],
    limit: int,
    max_matches: int,
    threshold: float | None,
    faces: int,
    model: naming.StrangerModel,
) -> tuple[Searched, bool]:
    """The searched face's identities judged, the matches to show, and
    whether the engine should be asked for more."""
    full = len(result["FaceMatches"]) >= limit
    floor = result["FaceMatches"][-1]["Similarity"] if full else None
    judgements = naming.judge(_identities(matches), faces, model, floor)
    by_key = {judgement.identity.key: judgement for judgement in judgements}
    if threshold is None:
        keys = {judgement.identity.key for judgement in judgements[:1] + [j for j in judgements if j.above_strangers]}
        candidates = [m for m in matches if m["_key"] in keys and m["Similarity"] >= naming.BASE_THRESHOLD]
        more = full and len(candidates) == len(matches)  # every face seen is shown: there may be more
    else:
        candidates = [m for m in matches if m["Similarity"] >= threshold]
        more = full and floor >= threshold
    shown = candidates[:max_matches]
    short = full and (len(judgements) < 2 or (more and len(shown) < max_matches))
    public = [
        {
            **{name: value for name, value in match.items() if not name.startswith("_")},
            "expectedStrangers": naming.significant(by_key[match["_key"]].expected_strangers),
            "confident": by_key[match["_key"]].confident,
        }
        for match in shown
    ]
    named = [match["label"] for match in public if threshold is not None or match["confident"]]
    shown_keys = list(dict.fromkeys(match["_key"] for match in shown))
    searched = Searched(
        {**result, "FaceMatches": [match["_match"] for match in shown]},
        public,
        named,
        [by_key[key] for key in shown_keys],
        judgements,
    )
    return searched, short


def _identities(matches: list[dict]) -> list[naming.Identity]:
    """The matches (best first) grouped by who they are: a person or a
    name is one identity (by the label shown), a face without either its
    own."""
    grouped: dict[str, list[dict]] = {}
    for match in matches:
        grouped.setdefault(match["_key"], []).append(match)
    return [
        naming.Identity(
            key,
            group[0]["label"],
            key.startswith("name:"),
            group[0]["Similarity"],
            len(group),
            next((match["personId"] for match in group if "personId" in match), None),
        )
        for key, group in grouped.items()
    ]


def _join_records(svc: Services, results: list[dict]) -> list[list[dict]]:
    """Each result's matches whose records exist, with their records:
    label, personId, and (as `_key` and `_match`) their identity's key and
    the Rekognition-shaped match."""
    found = svc.records.find_faces(
        list({match["Face"]["FaceId"] for result in results for match in result["FaceMatches"]})
    )
    people = svc.records.find_people(sorted({face["UserId"] for face, _ in found.values() if face.get("UserId")}))
    joined = []
    for result in results:
        matches = []
        for match in result["FaceMatches"]:
            if match["Face"]["FaceId"] not in found:
                continue
            face, metadata = found[match["Face"]["FaceId"]]
            person = people.get(face.get("UserId"))
            label = person["name"] if person else label_for(face["imageKey"], metadata)
            known = person is not None or bool(metadata.get("name"))
            matches.append(
                {
                    "FaceId": face["FaceId"],
                    "Similarity": match["Similarity"],
                    "BoundingBox": face["BoundingBox"],
                    "imageKey": face["imageKey"],
                    "metadata": metadata,
                    "label": label,
                    **({"personId": person["personId"]} if person else {}),
                    "_key": f"name:{label}" if known else f"face:{face['FaceId']}",
                    "_match": _with_person(match, face, people),
                }
            )
        joined.append(matches)
    return joined


def _with_person(match: dict, face: dict, people: dict) -> dict:
    """The Rekognition-shaped match, its Face carrying UserId as the
    records say (Rekognition's own does; the embedded collection's not)."""
    public = {name: value for name, value in match["Face"].items() if name != "UserId"}
    if face.get("UserId") in people:
        public["UserId"] = face["UserId"]
    return {**match, "Face": public}
