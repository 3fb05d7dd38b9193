"""The API, the indexing queue's workers and the re-drive on the AWS
wiring: chalice.test.Client over moto (S3, DynamoDB, SQS) and the
Rekognition fake, with the dev stage's config."""

import json
import logging
import os
import subprocess
import sys
from urllib.parse import quote

import pytest
from chalice.test import Client

from app import app
from chalicelib.api.api_key import OPEN_ROUTES
from chalicelib.core import index_queue, indexing, records
from chalicelib.core.config import AWS_CALL_ATTEMPTS, Settings
from chalicelib.core.errors import ConfigurationError
from chalicelib.core.keys import encode_key
from chalicelib.core.records import iso_before, now
from tests.support.calls import put_photo, search_photo
from tests.support.fake_rekognition import REGION, load_setup_script
from tests.support.photos import REPO, photo


def test_a_put_photo_is_pending_until_its_s3_event_indexes_it(client, stage):
    reply = put_photo(client, "keanu.jpg", photo("Keanu-Reeves.jpg"))
    assert reply.status_code == 201
    assert reply.json_body["image"]["status"] == "pending" and reply.json_body["faces"] == []
    assert client.http.get("/images/keanu.jpg").json_body["image"]["status"] == "pending"
    stage.events.deliver()
    image = client.http.get("/images/keanu.jpg").json_body
    assert image["image"]["status"] == "indexed"
    assert len(image["faces"]) == 1


def test_repeated_and_shuffled_events_create_no_duplicate_faces(client, stage):
    put_photo(client, "group.jpg", photo("Keanu-Avril-Mike.jpg"))
    put_photo(client, "keanu.jpg", photo("Keanu-Reeves.jpg"))
    stage.events.deliver(shuffle=7, duplicate=True)
    first = client.http.get("/images/group.jpg").json_body["faces"]
    assert client.http.get("/info").json_body["faces"] == len(first) + 1 == 4
    assert stage.rekognition.operations().count("IndexFaces") == 2  # the duplicates found them done


def test_a_key_with_spaces_and_unicode_works_end_to_end(client, stage):
    key = "Keanu Reeves à Paris+1.jpg"
    assert put_photo(client, quote(key), photo("Keanu-Reeves.jpg"), **{"x-amz-meta-name": "Keanu"}).status_code == 201
    stage.events.deliver()
    image = client.http.get(f"/images/{quote(key)}").json_body
    assert image["image"]["key"] == key
    assert image["image"]["status"] == "indexed"
    found = search_photo(client, photo("Keanu-Reeves.jpg")).json_body
    assert [m["imageKey"] for m in found["matches"]] == [key]
    assert found["matchedFaces"] == ["Keanu"]


def test_a_photo_put_into_a_folder_of_the_bucket_is_indexed_and_reachable(client, stage):
    """Copied in by other means (the console, `aws s3 cp`): found by search,
    readable and deletable through the API by its key in b64: form."""
    key = "album/console upload.jpg"
    stage.s3.put_object(Bucket=stage.bucket, Key=key, Body=photo("Avril-Lavigne.jpg"), ContentType="image/jpeg")
    stage.events.deliver()
    path = f"/images/{encode_key(key)}"
    assert client.http.get(path).json_body["image"]["faceCount"] == 1
    assert [m["imageKey"] for m in search_photo(client, photo("Avril-Lavigne.jpg")).json_body["matches"]] == [key]
    assert client.http.get(f"{path}/file", headers={"Accept": "image/jpeg"}).status_code == 307
    assert client.http.delete(path).json_body == {"deleted": {"key": key, "faces": 1}}
    assert stage.s3.list_objects_v2(Bucket=stage.bucket).get("KeyCount") == 0


def test_replacing_a_photo_deletes_its_old_faces_from_the_collection(client, stage):
    put_photo(client, "p.jpg", photo("Keanu-Reeves.jpg"))
    stage.events.deliver()
    put_photo(client, "p.jpg", photo("Avril-Lavigne.jpg"))
    stage.events.deliver()
    assert client.http.get("/info").json_body["faces"] == 1
    assert search_photo(client, photo("Keanu-Reeves.jpg")).json_body["matches"] == []


def test_a_throttled_photo_is_tried_again_and_is_never_an_attempt(client, stage):
    """Rekognition throttles every attempt the pacing makes: the stage's
    IndexFaces pace is cut for every worker, and the worker tries the photo
    again after a pause, uncounted: no attempt, no error, no receive."""
    put_photo(client, "bulk.jpg", photo("Jim-Carrey.jpg"))
    for _ in range(AWS_CALL_ATTEMPTS):
        stage.rekognition.fail_next("IndexFaces", "ThrottlingException")
    stage.events.deliver()
    image = client.http.get("/images/bulk.jpg").json_body
    assert image["image"]["status"] == "indexed" and len(image["faces"]) == 1
    assert "attempts" not in image["image"] and "error" not in image["image"]
    assert stage.rekognition.operations().count("IndexFaces") == AWS_CALL_ATTEMPTS + 1
    assert stage.events.failed_invocations == [] and stage.events.dead_letters() == []
    pace = stage.dynamodb.get_item(
        TableName=stage.env["FACEPRINT_PEOPLE_TABLE"], Key={"personId": {"S": f"#pace:{REGION}:IndexFaces"}}
    )["Item"]
    assert "cutRate" in pace  # every worker of the stage slowed down


def test_a_photo_that_keeps_failing_ends_failed_and_its_event_dead_lettered(client, stage):
    """Each receive fails: on the queue's last receive the photo is recorded
    `failed` with the reason, and SQS moves the event to the dead-letter
    queue. Moved back (what `aws sqs start-message-move-task` does), it is
    indexed."""
    put_photo(client, "broken.jpg", photo("Jim-Carrey.jpg"))
    for _ in range(index_queue.MAX_RECEIVES * AWS_CALL_ATTEMPTS):  # every attempt of every receive
        stage.rekognition.fail_next("IndexFaces", "InternalServerError")
    stage.events.deliver()
    image = client.http.get("/images/broken.jpg").json_body["image"]
    assert image["status"] == "failed" and image["attempts"] == index_queue.MAX_RECEIVES
    assert image["error"] == (
        f"Indexing failed {index_queue.MAX_RECEIVES} times; the last time: "
        "IndexFaces failed on AWS's side (InternalServerError); retry after a pause."
    )
    assert len(stage.events.failed_invocations) == index_queue.MAX_RECEIVES
    [dead] = stage.events.dead_letters()
    assert dead["Records"][0]["s3"]["object"]["key"] == "broken.jpg"
    assert stage.events.backlog()["Messages"] == 0
    stage.events.move_dead_letters_back()
    stage.events.drain()
    image = client.http.get("/images/broken.jpg").json_body
    assert image["image"]["status"] == "indexed" and len(image["faces"]) == 1
    assert "error" not in image["image"]


def test_a_photo_whose_event_was_lost_is_redriven_once_the_queue_is_empty(client, stage, monkeypatch):
    put_photo(client, "lost.jpg", photo("Jim-Carrey.jpg"))
    stage.events.take()  # S3 never delivers it
    schedule = client.events.generate_cw_event("Scheduled Event", "aws.events", {}, [])
    client.lambda_.invoke("redrive_pending", schedule)
    assert stage.events.backlog()["Messages"] == 0  # pending for seconds only: its event may be on its way
    later = iso_before(now(), -indexing.REDRIVE_AFTER_SECONDS - 60)
    monkeypatch.setattr(records, "now", lambda: later)
    stage.events.send([json.dumps(stage.events.event({"key": "other.jpg", "eTag": "0", "sequencer": "1"}))])
    client.lambda_.invoke("redrive_pending", schedule)
    assert stage.events.backlog()["Messages"] == 1  # the queue is not empty: an event may still come
    stage.events.drain()
    client.lambda_.invoke("redrive_pending", schedule)
    assert stage.events.backlog()["Messages"] == 1
    stage.events.drain()
    image = client.http.get("/images/lost.jpg").json_body
    assert image["image"]["status"] == "indexed" and len(image["faces"]) == 1
    client.lambda_.invoke("redrive_pending", schedule)
    assert stage.events.backlog()["Messages"] == 0


def test_the_redrive_reports_photos_pending_too_long_as_a_cloudwatch_metric(client, stage, monkeypatch, capsys):
    put_photo(client, "stuck.jpg", photo("Jim-Carrey.jpg"))
    stage.events.take()
    much_later = iso_before(now(), -index_queue.PENDING_TOO_LONG_SECONDS - indexing.REDRIVE_AFTER_SECONDS - 60)
    monkeypatch.setattr(records, "now", lambda: much_later)
    capsys.readouterr()
    client.lambda_.invoke("redrive_pending", client.events.generate_cw_event("Scheduled Event", "aws.events", {}, []))
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    [metrics] = [line for line in lines if "_aws" in line]
    [definition] = metrics["_aws"]["CloudWatchMetrics"]
    assert definition["Namespace"] == "Faceprint" and definition["Dimensions"] == [["Stage"]]
    assert {m["Name"] for m in definition["Metrics"]} == {
        "PhotosStuck",
        "PhotosPendingTooLong",
        "PhotosRedriven",
        "QueueHoursLeft",
        "CollectionFacesLeft",
    }
    assert (metrics["Stage"], metrics["PhotosPendingTooLong"], metrics["PhotosRedriven"]) == ("dev", 1, 1)
    assert metrics["PhotosStuck"] == 0  # the queue's progress is looked at from this run on
    assert metrics["CollectionFacesLeft"] == 10_000_000


def test_a_photo_deleted_from_the_bucket_by_other_means_leaves_the_archive(client, stage):
    put_photo(client, "gone.jpg", photo("Jim-Carrey.jpg"))
    stage.events.deliver()
    assert client.http.get("/info").json_body["faces"] == 1
    stage.s3.delete_object(Bucket=stage.bucket, Key="gone.jpg")  # `aws s3 rm`: a delete marker
    stage.events.deliver()
    assert client.http.get("/images/gone.jpg").status_code == 404
    assert client.http.get("/info").json_body["faces"] == 0
    assert search_photo(client, photo("Jim-Carrey.jpg")).json_body["matches"] == []


def test_the_buckets_own_notification_reaches_the_workers(client, stage):
    """moto's S3 sends its events to the queue `make aws-setup` connected
    (without versionId or sequencer, which moto leaves out): a photo copied
    straight into the bucket is indexed from it."""
    setup = load_setup_script()
    settings = setup.stage_settings(stage.env)
    setup.create_index_queue(settings, stage.sqs, stage.s3, log=lambda _: None)  # the harness plays S3 otherwise
    stage.events.held = True
    stage.s3.put_object(
        Bucket=stage.bucket, Key="direct.jpg", Body=photo("Avril-Lavigne.jpg"), ContentType="image/jpeg"
    )
    stage.events.take()  # the harness's own copy of the event stays unsent
    stage.events.drain()
    image = client.http.get("/images/direct.jpg").json_body
    assert image["image"]["status"] == "indexed" and len(image["faces"]) == 1


def test_no_face_in_the_query_is_an_empty_200(client, stage):
    reply = search_photo(client, photo("no-face.jpg"))
    assert reply.status_code == 200
    assert reply.json_body["matches"] == []
    assert "SearchedFaceBoundingBox" not in reply.json_body["faces"]


@pytest.mark.parametrize("code", ["ThrottlingException", "InternalServerError"])
def test_rekognition_throttling_or_failing_is_a_503_with_retry_after(client, stage, code):
    for _ in range(AWS_CALL_ATTEMPTS):  # every attempt the pacing makes
        stage.rekognition.fail_next("SearchFacesByImage", code)
    reply = search_photo(client, photo("Keanu-Reeves.jpg"))
    assert reply.status_code == 503
    assert reply.json_body["error"] == "ServiceUnavailable"
    assert int(reply.headers["Retry-After"]) >= 1


def test_a_missing_collection_is_a_500_whose_log_names_it_and_the_stage(client, stage, caplog):
    stage.rekognition.delete_collection(CollectionId=stage.env["FACEPRINT_COLLECTION"])
    with caplog.at_level(logging.ERROR):
        reply = client.http.get("/info")
    assert reply.status_code == 500
    assert f"'{stage.env['FACEPRINT_COLLECTION']}'" in caplog.text
    assert "'dev'" in caplog.text


def test_every_api_route_requires_an_api_key():
    api = [path for path in app.routes if path not in OPEN_ROUTES]  # the console, its OpenAPI document and Swagger UI
    assert {"/people/{person_id}", "/search/people", "/compare", "/faces/{face_id}/matches"} <= set(api)
    unguarded = [
        f"{method} {path}" for path in api for method, entry in app.routes[path].items() if not entry.api_key_required
    ]
    assert unguarded == []


def test_importing_the_app_in_an_aws_stage_loads_neither_dlib_nor_numpy_nor_a_client():
    code = (
        "import sys, app\n"
        "heavy = sorted(m for m in ('dlib', 'numpy', 'boto3', 'botocore') if m in sys.modules)\n"
        "from chalicelib.aws import clients\n"
        "print(heavy, len(clients._clients))\n"
    )
    env = {**os.environ, "FACEPRINT_ENGINE": "rekognition", "FACEPRINT_STAGE": "dev"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] 0"


@pytest.mark.parametrize(
    "missing", ["FACEPRINT_BUCKET", "FACEPRINT_IMAGES_TABLE", "FACEPRINT_COLLECTION", "FACEPRINT_INDEX_QUEUE"]
)
def test_a_missing_resource_name_says_which_variable_to_set(missing):
    env = {
        "FACEPRINT_ENGINE": "rekognition",
        "FACEPRINT_BUCKET": "b",
        "FACEPRINT_IMAGES_TABLE": "i",
        "FACEPRINT_FACES_TABLE": "f",
        "FACEPRINT_PEOPLE_TABLE": "p",
        "FACEPRINT_COLLECTION": "c",
        "FACEPRINT_INDEX_QUEUE": "q",
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
            env = c.lambda_._config.scope(name, "index_queued_photos").environment_variables
        settings = Settings.from_env(env)
        assert (settings.engine, settings.stage) == ("rekognition", name)
        assert "FACEPRINT_DATA_DIR" not in env and "PORT" not in env
