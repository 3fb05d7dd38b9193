"""The API and the S3 handler on the AWS wiring: chalice.test.Client over
moto (S3, DynamoDB) and the Rekognition fake, with the dev stage's config."""

import logging
import os
import subprocess
import sys
from urllib.parse import quote, quote_plus

import pytest
from chalice.test import Client

from app import app
from chalicelib.core.config import Settings
from chalicelib.core.errors import ConfigurationError
from tests.support.calls import put_photo, search_photo
from tests.support.fake_rekognition import aws_stage
from tests.support.photos import REPO, photo


@pytest.fixture
def stage(monkeypatch):
    with aws_stage(monkeypatch, "dev") as resources:
        yield resources


@pytest.fixture
def client(stage):
    with Client(app, stage_name="dev") as c:
        yield c


def _deliver(client, stage, key: str):
    """What S3 sends: the key URL-encoded, spaces as '+'."""
    event = client.events.generate_s3_event(bucket=stage.bucket, key=quote_plus(key))
    client.lambda_.invoke("index_stored_photo", event)


def test_a_put_photo_is_pending_until_its_s3_event_indexes_it(client, stage):
    reply = put_photo(client, "keanu.jpg", photo("Keanu-Reeves.jpg"))
    assert reply.status_code == 201
    assert reply.json_body["image"]["status"] == "pending"
    _deliver(client, stage, "keanu.jpg")
    image = client.http.get("/images/keanu.jpg").json_body
    assert image["image"]["status"] == "indexed"
    assert len(image["faces"]) == 1


def test_a_repeated_event_creates_no_duplicate_faces(client, stage):
    put_photo(client, "group.jpg", photo("Keanu-Avril-Mike.jpg"))
    _deliver(client, stage, "group.jpg")
    first = client.http.get("/images/group.jpg").json_body["faces"]
    _deliver(client, stage, "group.jpg")
    _deliver(client, stage, "group.jpg")
    assert client.http.get("/images/group.jpg").json_body["faces"] == first
    assert client.http.get("/info").json_body["faces"] == len(first) == 3
    assert stage.rekognition.operations().count("IndexFaces") == 1


def test_a_key_with_spaces_and_unicode_works_end_to_end(client, stage):
    key = "Keanu Reeves à Paris+1.jpg"
    assert put_photo(client, quote(key), photo("Keanu-Reeves.jpg"), **{"x-amz-meta-name": "Keanu"}).status_code == 201
    _deliver(client, stage, key)
    image = client.http.get(f"/images/{quote(key)}").json_body
    assert image["image"]["key"] == key
    assert image["image"]["status"] == "indexed"
    found = search_photo(client, photo("Keanu-Reeves.jpg")).json_body
    assert [m["imageKey"] for m in found["matches"]] == [key]
    assert found["matchedFaces"] == ["Keanu"]


def test_a_photo_put_into_the_bucket_directly_is_indexed(client, stage):
    stage.s3.put_object(Bucket=stage.bucket, Key="console upload.jpg", Body=photo("Avril-Lavigne.jpg"))
    _deliver(client, stage, "console upload.jpg")
    assert client.http.get(f"/images/{quote('console upload.jpg')}").json_body["image"]["faceCount"] == 1


def test_replacing_a_photo_deletes_its_old_faces_from_the_collection(client, stage):
    put_photo(client, "p.jpg", photo("Keanu-Reeves.jpg"))
    _deliver(client, stage, "p.jpg")
    put_photo(client, "p.jpg", photo("Avril-Lavigne.jpg"))
    _deliver(client, stage, "p.jpg")
    assert client.http.get("/info").json_body["faces"] == 1
    assert search_photo(client, photo("Keanu-Reeves.jpg")).json_body["matches"] == []


def test_no_face_in_the_query_is_an_empty_200(client, stage):
    reply = search_photo(client, photo("no-face.jpg"))
    assert reply.status_code == 200
    assert reply.json_body["matches"] == []
    assert "SearchedFaceBoundingBox" not in reply.json_body["faces"]


def test_rekognition_throttling_is_a_503_with_retry_after(client, stage):
    stage.rekognition.fail_next("SearchFacesByImage", "ThrottlingException")
    reply = search_photo(client, photo("Keanu-Reeves.jpg"))
    assert reply.status_code == 503
    assert int(reply.headers["Retry-After"]) >= 1


def test_a_missing_collection_is_a_500_whose_log_names_it_and_the_stage(client, stage, caplog):
    stage.rekognition.delete_collection(CollectionId=stage.env["FACEPRINT_COLLECTION"])
    with caplog.at_level(logging.ERROR):
        reply = client.http.get("/info")
    assert reply.status_code == 500
    assert f"'{stage.env['FACEPRINT_COLLECTION']}'" in caplog.text
    assert "'dev'" in caplog.text


def test_every_api_route_requires_an_api_key():
    api = ["/index/{filename}", "/images/{key}", "/search", "/info"]
    unguarded = [
        f"{method} {path}" for path in api for method, entry in app.routes[path].items() if not entry.api_key_required
    ]
    assert unguarded == []


def test_importing_the_app_in_an_aws_stage_loads_neither_dlib_nor_numpy_nor_a_client():
    code = (
        "import sys, app\n"
        "heavy = sorted(m for m in ('dlib', 'numpy', 'boto3', 'botocore') if m in sys.modules)\n"
        "from chalicelib.aws import clients as aws\n"
        "print(heavy, len(aws._clients))\n"
    )
    env = {**os.environ, "FACEPRINT_ENGINE": "rekognition", "FACEPRINT_STAGE": "dev"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] 0"


@pytest.mark.parametrize("missing", ["FACEPRINT_BUCKET", "FACEPRINT_IMAGES_TABLE", "FACEPRINT_COLLECTION"])
def test_a_missing_resource_name_says_which_variable_to_set(missing):
    env = {
        "FACEPRINT_ENGINE": "rekognition",
        "FACEPRINT_BUCKET": "b",
        "FACEPRINT_IMAGES_TABLE": "i",
        "FACEPRINT_FACES_TABLE": "f",
        "FACEPRINT_COLLECTION": "c",
    }
    del env[missing]
    with pytest.raises(ConfigurationError, match=missing):
        Settings.from_env(env)


def test_the_embedded_engine_inside_lambda_says_to_set_the_engine():
    with pytest.raises(ConfigurationError, match="FACEPRINT_ENGINE=rekognition"):
        Settings.from_env({"AWS_LAMBDA_FUNCTION_NAME": "faceprint-dev"})


def test_the_deployed_stages_name_their_resources():
    for name in ("dev", "prod"):
        with Client(app, stage_name=name) as c:
            env = c.lambda_._config.scope(name, "index_stored_photo").environment_variables
        settings = Settings.from_env(env)
        assert (settings.engine, settings.stage) == ("rekognition", name)
        assert "FACEPRINT_DATA_DIR" not in env and "PORT" not in env
