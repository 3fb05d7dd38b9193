"""After a restore on AWS (docs/deploy.md, "Backups and restores"): the
tables and the bucket are back, the Rekognition collection is empty (made
again) or lost. `make reindex STAGE=dev` rebuilds it from the bucket and the
tables, over moto and the Rekognition fake: every photo's faces again, every
name, and every person with their faces, found by search as before."""

from chalicelib import wiring
from chalicelib.core import indexing, people, searching
from chalicelib.core.config import Settings
from chalicelib.ops import cli, maintenance
from tests.support.fake_rekognition import aws_stage
from tests.support.photos import photo

PHOTOS = {"keanu.jpg": "Keanu-Reeves.jpg", "group.jpg": "Keanu-Avril-Mike.jpg", "avril.jpg": "Avril-Lavigne.jpg"}


def test_a_reindex_rebuilds_a_lost_collection_and_keeps_people_and_names(monkeypatch, capsys):
    with aws_stage(monkeypatch, "dev") as stage:
        svc = wiring.services(Settings.from_env(stage.env))
        for key, name in PHOTOS.items():
            indexing.upload_image(svc, key, photo(name), {"name": name.removesuffix(".jpg")})
        stage.events.deliver()
        keanu = [svc.records.faces_of("keanu.jpg")[0]["FaceId"], _largest_rightmost(svc.records.faces_of("group.jpg"))]
        people.put_person(svc, "keanu", "Keanu Reeves")
        people.associate_faces(svc, "keanu", keanu, 0.0)
        before = searching.search_image(svc, photo("Keanu-Reeves.jpg"), 80, 10)["matchedFaces"]

        # The disaster: the collection is gone (its faces and its Users); make aws-setup makes it again, empty.
        collection = stage.env["FACEPRINT_COLLECTION"]
        stage.rekognition.delete_collection(CollectionId=collection)
        stage.rekognition.create_collection(CollectionId=collection)
        lost = {maintenance.RECORD_WITHOUT_FACE, maintenance.PERSON_WITHOUT_USER}  # the faces, and the Users
        assert {d.kind for d in maintenance.check(svc)} == lost

        assert cli.main(["reindex", "--stage", "dev"]) == 0
        assert "reindexed 3 photo(s) in stage 'dev'" in capsys.readouterr().out
        assert maintenance.check(svc) == []
        person = people.get_person(svc, "keanu")
        assert person["person"]["name"] == "Keanu Reeves" and person["person"]["faceCount"] == 2
        assert not set(face["FaceId"] for face in person["faces"]) & set(keanu)  # new FaceIds, the same person
        found = people.search_people(svc, photo("Keanu-Reeves.jpg"), 80, 5)["people"]
        assert [match["personId"] for match in found][:1] == ["keanu"]
        assert searching.search_image(svc, photo("Keanu-Reeves.jpg"), 80, 10)["matchedFaces"] == before
        for key, name in PHOTOS.items():
            assert svc.records.get_image(key)["metadata"] == {"name": name.removesuffix(".jpg")}


def _largest_rightmost(faces: list[dict]) -> str:
    """Keanu in Keanu-Avril-Mike.jpg."""
    return max(faces, key=lambda face: face["BoundingBox"]["Left"])["FaceId"]
