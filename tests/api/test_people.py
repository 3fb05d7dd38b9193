"""People through the HTTP API, on both wirings: naming a person, giving
them faces (and Rekognition's reasons when a face is refused), finding
them by photo, faces by face, two photos compared, enrolling by upload."""

import json
import uuid

import botocore.session
import pytest
from botocore.validate import ParamValidator

from tests.support import imagegen
from tests.support.calls import indexed, put_photo, search_photo
from tests.support.people import associate, compare, face_ids, put_person, search_people
from tests.support.photos import photo

REKOGNITION = botocore.session.get_session().get_service_model("rekognition")
KEANU, LAWRENCE, GROUP = "Keanu-Reeves.jpg", "Lawrence2.jpg", "Keanu-Avril-Mike.jpg"
NAMING = ("threshold", "thresholdReason", "identities")  # what the naming rule adds to a search reply (core/naming.py)


def assert_shape(value: dict, operation: str, drop: tuple[str, ...] = ()) -> None:
    """`value` (less the API's own keys `drop`) conforms to the Rekognition operation's output."""
    value = {name: item for name, item in value.items() if name not in drop}
    report = ParamValidator().validate(value, REKOGNITION.operation_model(operation).output_shape)
    assert not report.has_errors(), report.generate_report()


def assert_error(reply, status: int, code: str, says: str = "") -> None:
    assert reply.status_code == status, reply.body
    assert reply.json_body["error"] == code
    assert says in reply.json_body["message"]


def index(client, *names: str) -> dict[str, list[str]]:
    return {name: [f["FaceId"] for f in indexed(client, name, photo(name))["faces"]] for name in names}


def test_put_creates_a_person_then_renames_them(client):
    created = put_person(client, "keanu", "Keanu")
    assert created.status_code == 201
    person = created.json_body["person"]
    assert (person["personId"], person["name"], person["faceCount"]) == ("keanu", "Keanu", 0)
    assert person["createdAt"] == person["updatedAt"]
    renamed = put_person(client, "keanu", "Keanu Reeves")
    assert renamed.status_code == 200
    assert renamed.json_body["person"]["name"] == "Keanu Reeves"
    assert renamed.json_body["person"]["createdAt"] == person["createdAt"]
    assert client.http.get("/people/keanu").json_body == {"person": renamed.json_body["person"], "faces": []}


def test_people_are_listed_a_page_at_a_time(client):
    for person_id in ("a:1", "b.2", "c_3"):
        assert put_person(client, person_id, person_id.upper()).status_code == 201
    first = client.http.get("/people?limit=2").json_body
    rest = client.http.get(f"/people?limit=2&next={first['next']}").json_body
    assert [p["personId"] for p in first["people"] + rest["people"]] == ["a:1", "b.2", "c_3"]
    assert rest["next"] is None


@pytest.mark.parametrize("person_id", ["a%20b", "%C3%A9", "x" * 129, "a%2Fb"])
def test_a_person_id_follows_rekognitions_user_id_rule(client, person_id):
    assert_error(put_person(client, person_id, "Someone"), 400, "BadRequest")


@pytest.mark.parametrize("body", ["", "[]", '{"name": ""}', '{"name": 7}', "not json", '{"name": "' + "x" * 300 + '"}'])
def test_a_person_needs_a_name(client, body):
    reply = client.http.put("/people/p1", body=body, headers={"Content-Type": "application/json"})
    assert_error(reply, 400, "BadRequest")
    assert client.http.get("/people/p1").status_code == 404


def test_an_unknown_person_is_a_404_everywhere(client):
    face = str(uuid.uuid4())
    assert_error(client.http.get("/people/nobody"), 404, "NotFound", "nobody")
    assert_error(client.http.delete("/people/nobody"), 404, "NotFound")
    assert_error(associate(client, "nobody", [face]), 404, "NotFound")
    assert_error(client.http.delete(f"/people/nobody/faces/{face}"), 404, "NotFound")
    assert_error(client.http.get("/faces?person=nobody"), 404, "NotFound")


def test_associating_faces_says_why_each_refused_face_was_refused(client):
    faces = index(client, KEANU, LAWRENCE)
    keanu, lawrence, unknown = faces[KEANU][0], faces[LAWRENCE][0], str(uuid.uuid4())
    put_person(client, "keanu", "Keanu Reeves")
    reply = associate(client, "keanu", [keanu, lawrence, unknown])
    assert reply.status_code == 200
    body = reply.json_body
    assert body["associatedFaces"] == [{"FaceId": keanu}]
    assert body["person"]["faceCount"] == 1
    reasons = {f["FaceId"]: f["Reasons"] for f in body["unsuccessfulFaceAssociations"]}
    assert reasons == {lawrence: ["LOW_MATCH_CONFIDENCE"], unknown: ["FACE_NOT_FOUND"]}
    put_person(client, "other", "Someone else")
    taken = associate(client, "other", [keanu]).json_body["unsuccessfulFaceAssociations"]
    assert [(f["FaceId"], f["Reasons"]) for f in taken] == [(keanu, ["ASSOCIATED_TO_A_DIFFERENT_USER"])]
    # A face already the person's is ignored, as Rekognition ignores it.
    again = associate(client, "keanu", [keanu]).json_body
    assert again["associatedFaces"] == [] and again["unsuccessfulFaceAssociations"] == []
    # A lower UserMatchThreshold lets the unlike face in.
    assert associate(client, "keanu", [lawrence], threshold=10).json_body["associatedFaces"] == [{"FaceId": lawrence}]


@pytest.mark.parametrize(
    "body",
    [
        {"faceIds": []},
        {"faceIds": ["f"] * 101},
        {"faceIds": "f"},
        {"faceIds": [7]},
        {"faceIds": ["f"], "threshold": 101},
    ],
)
def test_an_association_request_is_checked(client, body):
    put_person(client, "p", "P")
    reply = client.http.post("/people/p/faces", body=json.dumps(body), headers={"Content-Type": "application/json"})
    assert_error(reply, 400, "BadRequest")


def test_associated_faces_carry_the_user_id_and_are_listed_by_person(client):
    faces = index(client, KEANU, GROUP)
    put_person(client, "keanu", "Keanu Reeves")
    mine = [faces[KEANU][0], face_ids(client, GROUP)[0]]  # the largest face of the group photo is Keanu's
    assert associate(client, "keanu", mine).json_body["person"]["faceCount"] == 2
    assert client.http.get(f"/faces/{mine[0]}").json_body["face"]["UserId"] == "keanu"
    listed = client.http.get("/faces?person=keanu").json_body
    assert sorted(f["FaceId"] for f in listed["faces"]) == sorted(mine) and listed["next"] is None
    person = client.http.get("/people/keanu").json_body
    assert sorted(f["FaceId"] for f in person["faces"]) == sorted(mine)
    others = [f for f in client.http.get(f"/images/{GROUP}").json_body["faces"] if f["FaceId"] not in mine]
    assert len(others) == 2 and not any("UserId" in f for f in others)


def test_a_face_can_be_taken_from_its_person(client):
    faces = index(client, KEANU)
    keanu = faces[KEANU][0]
    put_person(client, "keanu", "Keanu Reeves")
    associate(client, "keanu", [keanu])
    reply = client.http.delete(f"/people/keanu/faces/{keanu}")
    assert reply.status_code == 200
    assert reply.json_body["disassociatedFaces"] == [{"FaceId": keanu}]
    assert reply.json_body["person"]["faceCount"] == 0
    assert "UserId" not in client.http.get(f"/faces/{keanu}").json_body["face"]
    assert_error(
        client.http.delete(f"/people/keanu/faces/{keanu}"), 404, "NotFound", "is not a face of person 'keanu'."
    )
    # ... and given to someone else.
    put_person(client, "other", "Other")
    assert associate(client, "other", [keanu]).json_body["associatedFaces"] == [{"FaceId": keanu}]


def test_deleting_a_person_keeps_their_faces_indexed(client):
    faces = index(client, KEANU)
    put_person(client, "keanu", "Keanu Reeves")
    associate(client, "keanu", faces[KEANU])
    reply = client.http.delete("/people/keanu")
    assert reply.json_body == {"deleted": {"personId": "keanu", "faces": 1}}
    assert client.http.get("/people/keanu").status_code == 404
    assert client.http.delete("/people/keanu").status_code == 404
    face = client.http.get(f"/faces/{faces[KEANU][0]}").json_body["face"]
    assert "UserId" not in face
    match = search_photo(client, photo(KEANU)).json_body["matches"][0]
    assert match["label"] == "Keanu reeves" and "personId" not in match
    # The same id makes a new, empty person.
    assert put_person(client, "keanu", "Keanu").json_body["person"]["faceCount"] == 0


def test_deleting_a_persons_photo_takes_the_face_from_them(client):
    faces = index(client, KEANU)
    put_person(client, "keanu", "Keanu Reeves")
    associate(client, "keanu", faces[KEANU])
    assert client.http.delete(f"/images/{KEANU}").status_code == 200
    left = client.http.get("/people/keanu").json_body
    assert left["faces"] == [] and left["person"]["faceCount"] == 0
    assert client.http.get("/info").json_body["faces"] == 0


def test_search_matches_are_labelled_with_their_person(client):
    faces = index(client, KEANU, GROUP)
    put_person(client, "keanu", "Keanu Reeves")
    associate(client, "keanu", faces[KEANU])
    body = search_photo(client, photo(KEANU), "?max=5").json_body
    assert body["matchedFaces"] == ["Keanu Reeves", "Keanu avril mike"]
    assert [m.get("personId") for m in body["matches"]] == ["keanu", None]
    assert body["faces"]["FaceMatches"][0]["Face"]["UserId"] == "keanu"
    assert "UserId" not in body["faces"]["FaceMatches"][1]["Face"]
    every = search_photo(client, photo(GROUP), "?faces=all").json_body
    assert ["Keanu Reeves" in face["matchedFaces"] for face in every["searchedFaces"]].count(True) == 1


def test_search_people_finds_a_person_on_all_of_their_faces(client):
    faces = index(client, KEANU, GROUP, LAWRENCE)
    put_person(client, "keanu", "Keanu Reeves")
    put_person(client, "lawrence", "Lawrence")
    associate(client, "keanu", [faces[KEANU][0], face_ids(client, GROUP)[0]])
    associate(client, "lawrence", faces[LAWRENCE])
    body = search_people(client, photo("Keanu-Avril-Lawrence.jpg")).json_body
    assert [p["personId"] for p in body["people"]] == ["keanu"]
    assert body["people"][0]["name"] == "Keanu Reeves" and body["people"][0]["similarity"] >= 80
    assert body["UserMatches"] == [
        {"Similarity": body["people"][0]["similarity"], "User": {"UserId": "keanu", "UserStatus": "ACTIVE"}}
    ]
    assert [f["Reasons"] for f in body["UnsearchedFaces"]] == [["FACE_NOT_LARGEST"]] * 2
    assert_shape(body, "SearchUsersByImage", drop=("people", *NAMING))
    # Its similarity is that of the person's best face, as POST /search gives it.
    best = search_photo(client, photo("Keanu-Avril-Lawrence.jpg")).json_body["matches"][0]
    assert body["people"][0]["similarity"] == pytest.approx(best["Similarity"], abs=1e-3)
    # A threshold above it finds no one.
    assert search_people(client, photo("Keanu-Avril-Lawrence.jpg"), "?threshold=99.9").json_body["people"] == []


def test_search_people_with_an_unknown_face_or_none_gives_empty_lists(client):
    index(client, KEANU)
    put_person(client, "keanu", "Keanu Reeves")
    unknown = search_people(client, photo("Jim-Carrey.jpg")).json_body
    assert unknown["people"] == [] and unknown["UserMatches"] == [] and "SearchedFace" in unknown
    none = search_people(client, photo("no-face.jpg")).json_body
    assert none["people"] == [] and none["UserMatches"] == [] and "SearchedFace" not in none
    assert_shape(none, "SearchUsersByImage", drop=("people", *NAMING))


@pytest.mark.parametrize("query", ["?threshold=101", "?max=0", "?max=501", "?threshold=x"])
def test_search_people_checks_its_parameters(client, query):
    assert_error(search_people(client, photo(KEANU), query), 400, "BadRequest")


def test_search_people_takes_the_same_bodies_and_refuses_the_same_photos(client):
    assert_error(search_people(client, b""), 400, "InvalidImage")
    assert_error(search_people(client, b"GIF89a" + b"\0" * 100), 415, "UnsupportedMediaType")
    assert search_people(client, photo(KEANU)).status_code == 200


def test_face_matches_never_return_the_face_itself(client):
    faces = index(client, KEANU, GROUP, LAWRENCE)
    keanu = faces[KEANU][0]
    put_person(client, "keanu", "Keanu Reeves")
    associate(client, "keanu", [keanu])
    body = client.http.get(f"/faces/{keanu}/matches").json_body
    assert body["SearchedFaceId"] == keanu
    assert [m["FaceId"] for m in body["matches"]] == [face_ids(client, GROUP)[0]]
    assert body["matchedFaces"] == ["Keanu avril mike"]
    assert_shape(body, "SearchFaces", drop=("matches", "matchedFaces", *NAMING))
    everyone = client.http.get(f"/faces/{keanu}/matches?threshold=0&max=100").json_body["matches"]
    assert len(everyone) == 4 and keanu not in [m["FaceId"] for m in everyone]
    # Another face finds Keanu's under his name.
    group_keanu = client.http.get(f"/faces/{face_ids(client, GROUP)[0]}/matches").json_body["matches"]
    assert [(m["label"], m["personId"]) for m in group_keanu] == [("Keanu Reeves", "keanu")]


def test_face_matches_of_an_unknown_face_are_a_404_and_parameters_are_checked(client):
    assert_error(client.http.get(f"/faces/{uuid.uuid4()}/matches"), 404, "NotFound")
    faces = index(client, KEANU)
    for query in ("?threshold=-1", "?max=0", "?max=5000"):
        assert_error(client.http.get(f"/faces/{faces[KEANU][0]}/matches{query}"), 400, "BadRequest")


def test_compare_finds_the_source_face_in_the_target(client):
    body = compare(client, photo(KEANU), photo(GROUP)).json_body
    assert_shape(body, "CompareFaces")
    assert len(body["FaceMatches"]) == 1 and body["FaceMatches"][0]["Similarity"] >= 80
    assert len(body["UnmatchedFaces"]) == 2
    assert body["FaceMatches"][0]["Face"]["BoundingBox"]["Left"] < 0.3  # Keanu stands on the left
    strict = compare(client, photo(KEANU), photo(GROUP), threshold=99.9).json_body
    assert strict["FaceMatches"] == [] and len(strict["UnmatchedFaces"]) == 3
    assert client.http.get("/info").json_body["images"] == 0  # nothing is stored


def test_compare_with_no_face_in_a_photo_gives_empty_lists(client):
    no_source = compare(client, photo("no-face.jpg"), photo(GROUP)).json_body
    assert no_source == {"FaceMatches": [], "UnmatchedFaces": []}
    no_target = compare(client, photo(KEANU), photo("no-face.jpg")).json_body
    assert no_target["FaceMatches"] == [] and no_target["UnmatchedFaces"] == []
    assert no_target["SourceImageFace"]["Confidence"] > 80


@pytest.mark.parametrize(
    "source, status, code",
    [
        (b"", 400, "InvalidImage"),
        (b"GIF89a" + b"\0" * 100, 415, "UnsupportedMediaType"),
        (b"\xff\xd8\xff" + b"\0" * (15 * 1024 * 1024), 413, "PayloadTooLarge"),
        (photo(KEANU)[:5000], 400, "InvalidImage"),
    ],
)
def test_compare_refuses_photos_as_uploads_do_and_names_which(client, source, status, code):
    assert_error(compare(client, source, photo(GROUP)), status, code, "source image")
    assert_error(compare(client, photo(GROUP), source), status, code, "target image")


def test_compare_errors_speak_of_its_json_body_not_of_upload_body_types(client):
    gif = compare(client, b"GIF89a" + b"\0" * 100, photo(GROUP)).json_body["message"]
    assert gif.startswith("The source image: send a JPEG, PNG, HEIC/HEIF, WebP or AVIF photo")
    assert "octet-stream" not in gif and "text/plain" not in gif
    sent_a_photo = client.http.post("/compare", body=photo(GROUP), headers={"Content-Type": "image/jpeg"})
    assert_error(sent_a_photo, 415, "UnsupportedMediaType", "takes a JSON body")
    assert "octet-stream" not in sent_a_photo.json_body["message"]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_the_reserved_person_id_is_a_400_that_says_so_not_a_405(client, method):
    reply = client.http.request(
        method, "/people/suggestions", body=b'{"name": "x"}', headers={"Content-Type": "application/json"}
    )
    assert_error(reply, 400, "BadRequest", "'suggestions' is reserved")


def test_compare_takes_a_heic_photo_like_an_upload(client):
    heic = imagegen.phone_photo(KEANU, "image/heic")
    assert len(compare(client, heic, photo(GROUP)).json_body["FaceMatches"]) == 1


@pytest.mark.parametrize(
    "body",
    ["not json", "[]", json.dumps({"source": "x"}), json.dumps({"source": 5, "target": "x"}), '{"threshold": 120}'],
)
def test_compare_needs_a_json_body_with_both_photos(client, body):
    reply = client.http.post("/compare", body=body, headers={"Content-Type": "application/json"})
    assert_error(reply, 400, "BadRequest")


@pytest.mark.parametrize(
    "name, faces", [("Mike-Meyers.jpg", 1), ("no-face.jpg", 0), ("Justin-Trudeau-Barack-Obama.jpg", 2)]
)
def test_enrol_by_upload_takes_a_photo_of_exactly_one_face(client, name, faces):
    headers = {"x-amz-meta-person": "mike", "x-amz-meta-name": "Mike Myers"}
    image = indexed(client, "photo.jpg", photo(name), **headers)
    enrolment = image["image"]["enrolment"]
    assert enrolment["personId"] == "mike"
    if faces == 1:
        assert enrolment["status"] == "associated"
        assert image["faces"][0]["UserId"] == "mike"
        person = client.http.get("/people/mike").json_body["person"]
        assert (person["name"], person["faceCount"]) == ("Mike Myers", 1)
    else:
        assert enrolment["status"] == "refused"
        assert f"{faces} faces" in enrolment["message"]
        assert client.http.get("/people/mike").status_code == 404


def test_enrol_by_upload_adds_to_a_person_and_refuses_someone_else(client):
    indexed(client, "m1.jpg", photo("Mike-Meyers.jpg"), **{"x-amz-meta-person": "mike"})
    assert client.http.get("/people/mike").json_body["person"]["name"] == "mike"  # named by id without a name
    again = indexed(client, "m2.jpg", photo(GROUP), **{"x-amz-meta-person": "mike"})
    assert again["image"]["enrolment"]["status"] == "refused"  # three faces
    wrong = indexed(client, "k.jpg", photo(KEANU), **{"x-amz-meta-person": "mike"})
    assert wrong["image"]["enrolment"]["status"] == "refused"
    assert "LOW_MATCH_CONFIDENCE" in wrong["image"]["enrolment"]["message"]
    assert client.http.get("/people/mike").json_body["person"]["faceCount"] == 1


def test_enrol_by_upload_refuses_an_invalid_person_id_before_storing(api):
    reply = put_photo(api.client, "p.jpg", photo(KEANU), **{"x-amz-meta-person": "not valid!"})
    assert_error(reply, 400, "BadRequest", "personId")
    assert api.stored() == []
