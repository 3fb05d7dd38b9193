"""A role per function (issue 22, row 13): each Lambda function of an AWS
stage has its own policy file (.chalice/policy-<stage>-<role>.json), and
each is enough for what that function does. The whole stage is exercised
on moto and the Rekognition fake, every AWS call recorded with the function
that made it; each call must be granted by that function's own policy."""

import contextvars
import json
import os
from collections import defaultdict
from contextlib import contextmanager

import botocore.client
import pytest
from chalice.test import Client

from app import app
from chalicelib import wiring
from chalicelib.core.config import Settings
from chalicelib.core.keys import encode_key
from tests.adapters.test_aws_deploy import IAM_ACTION
from tests.support.calls import put_photo
from tests.support.fake_rekognition import FakeRekognition, WorkerClient, aws_stage
from tests.support.photos import REPO, photo

JSON = {"Content-Type": "application/json"}
JPEG = {"Content-Type": "image/jpeg"}
_function = contextvars.ContextVar("function", default=None)


def function_policies(stage: str) -> dict[str, set[str]]:
    """Each function's granted actions, as `chalice deploy` gives them: its
    own iam_policy_file, else the stage's."""
    config = json.loads((REPO / ".chalice" / "config.json").read_text())["stages"][stage]
    functions = ["api_handler", "index_queued_photos", "redrive_pending", "check_archive"]
    granted = {}
    for function in functions:
        name = config.get("lambda_functions", {}).get(function, {}).get("iam_policy_file", config["iam_policy_file"])
        policy = json.loads((REPO / ".chalice" / name).read_text())
        granted[function] = {action for statement in policy["Statement"] for action in statement["Action"]}
    return granted


@pytest.fixture
def recorded(monkeypatch):
    """Every AWS call the app makes, by the function making it (_function)."""
    calls: dict[str, set[str]] = defaultdict(set)
    make_api_call = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if _function.get():
            action = f"{client.meta.service_model.signing_name}:{operation}"
            calls[_function.get()].add(IAM_ACTION.get(action, action))
        return make_api_call(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    fake_call = FakeRekognition._call

    def fake_recording(fake, operation, params, handler):
        if _function.get():
            calls[_function.get()].add(f"rekognition:{operation}")
        return fake_call(fake, operation, params, handler)

    monkeypatch.setattr(FakeRekognition, "_call", fake_recording)
    return calls


@contextmanager
def running(function: str):
    token = _function.set(function)
    try:
        yield
    finally:
        _function.reset(token)


def test_each_function_is_granted_every_call_it_makes(monkeypatch, recorded):
    with aws_stage(monkeypatch, "dev") as stage, Client(app, stage_name="dev") as client:
        worker = WorkerClient(app, client.lambda_._config)
        http = client.http

        def api(method, path, **kw):
            with running("api_handler"):
                return http.request(method, path, **kw)

        def deliver():
            with running("index_queued_photos"):
                stage.events.deliver()

        # Uploads, indexed by the workers; enrolment by upload; then every route.
        with running("api_handler"):
            put_photo(client, "group.jpg", photo("Keanu-Avril-Mike.jpg"))
            put_photo(client, "keanu.jpg", photo("Keanu-Reeves.jpg"), **{"x-amz-meta-person": "keanu"})
            put_photo(client, "jim.jpg", photo("Jim-Carrey.jpg"))
        deliver()
        faces = api("GET", "/faces?image=group.jpg").json_body["faces"]
        api("PUT", "/people/avril", body=b'{"name": "Avril"}', headers=JSON)
        api("POST", "/people/avril/faces", body=json.dumps({"faceIds": [faces[1]["FaceId"]]}).encode(), headers=JSON)
        for method, path in [
            ("GET", "/images"),
            ("GET", "/images/group.jpg"),
            ("GET", "/info"),
            ("GET", "/people"),
            ("GET", "/people/avril"),
            ("GET", "/faces?person=avril"),
            ("GET", f"/faces/{faces[0]['FaceId']}"),
            ("GET", f"/faces/{faces[0]['FaceId']}/matches"),
            ("POST", "/people/suggestions"),
            ("GET", "/people/suggestions"),
        ]:
            assert api(method, path).status_code == 200, (method, path)
        assert api("GET", "/images/group.jpg/file", headers={"Accept": "image/jpeg"}).status_code == 307
        for query in ("", "?faces=all"):
            assert api("POST", f"/search{query}", body=photo("Keanu-Reeves.jpg"), headers=JPEG).status_code == 200
        assert api("POST", "/search/people", body=photo("Avril-Lavigne.jpg"), headers=JPEG).status_code == 200
        b64 = __import__("base64").b64encode(photo("Keanu-Reeves.jpg")).decode()
        pair = json.dumps({"source": b64, "target": b64}).encode()
        assert api("POST", "/compare", body=pair, headers=JSON).status_code == 200
        assert api("DELETE", f"/people/avril/faces/{faces[1]['FaceId']}").status_code == 200
        assert api("DELETE", f"/faces/{faces[2]['FaceId']}").status_code == 200
        assert api("DELETE", "/people/avril").status_code == 200
        assert api("DELETE", "/images/jim.jpg").status_code == 200
        assert api("DELETE", f"/images/{encode_key('keanu.jpg')}").status_code == 200
        deliver()  # the deletes' events
        # A photo whose event was lost: the re-drive sends it again; the daily check repairs the rest.
        with running("api_handler"):
            put_photo(client, "lost.jpg", photo("Lawrence2.jpg"))
        stage.events.take()
        schedule = client.events.generate_cw_event("Scheduled Event", "aws.events", {}, [])
        with running("redrive_pending"):
            worker.invoke("redrive_pending", schedule)
        deliver()
        # An erasure through the API, and one a client left halfway, which the daily check finishes.
        assert api("POST", "/people/keanu/erase?photos=true").status_code == 200
        api("PUT", "/people/avril", body=b'{"name": "Avril"}', headers=JSON)
        api("POST", "/people/avril/faces", body=json.dumps({"faceIds": [faces[1]["FaceId"]]}).encode(), headers=JSON)
        with running("api_handler"):  # an erasure a request began long ago and never finished
            svc = wiring.services(Settings.from_env({**os.environ, **stage.env}))
            begun = {"since": "2000-01-01T00:00:00.000+00:00", "photos": "all", "faces": [], "images": []}
            svc.records.mark_erasure("avril", {**begun, "kept": [], "removed": {}, "scan": None})
        stage.rekognition.delete_faces(CollectionId=stage.env["FACEPRINT_COLLECTION"], FaceIds=[faces[0]["FaceId"]])
        with running("check_archive"):
            worker.invoke("check_archive", schedule)
        assert api("GET", "/people/avril").status_code == 404
        deliver()
    granted = function_policies("dev")
    for function, calls in recorded.items():
        missing = calls - granted[function]
        assert not missing, f"{function} calls {sorted(missing)}, which its policy does not grant"
    assert set(recorded) == set(granted)  # every function ran
