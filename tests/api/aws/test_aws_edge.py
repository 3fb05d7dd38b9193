"""The AWS stage's edge (issue 22, row 13): API keys with scopes (read,
write, admin), the console's CSP narrowed to the stage's own bucket, and a
cap on the faces one `faces=all` search fans out to. moto's API Gateway
keeps the keys, the Rekognition fake counts the searches."""

import boto3
import pytest
from chalice.local import LambdaEventConverter
from chalice.test import Client

from app import app
from chalicelib import wiring
from chalicelib.api import scopes
from chalicelib.aws import api_keys
from chalicelib.aws import clients as aws
from chalicelib.core import limits
from tests.support.calls import put_photo
from tests.support.fake_rekognition import REGION
from tests.support.photos import photo

GROUP = "Keanu-Avril-Mike.jpg"  # three faces


def test_the_consoles_csp_lets_fetch_reach_the_stages_own_bucket_only(client, stage):
    policy = client.http.get("/").headers["Content-Security-Policy"]
    connect = next(part for part in policy.split("; ") if part.startswith("connect-src"))
    assert connect.split()[1:] == [
        "'self'",
        f"https://{stage.bucket}.s3.amazonaws.com",
        f"https://{stage.bucket}.s3.{REGION}.amazonaws.com",
    ]
    assert "*" not in policy


def test_offline_the_consoles_csp_reaches_nothing_but_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    with Client(app, stage_name="local") as local:
        policy = local.http.get("/").headers["Content-Security-Policy"]
    assert "connect-src 'self';" in policy and "amazonaws" not in policy


KEY_ID = "x-test-api-key-id"  # stands for the key API Gateway checked: requestContext.identity.apiKeyId


@pytest.fixture
def keys(stage, monkeypatch):
    """The stage's API Gateway keys, one per scope as `make aws-setup` makes
    them and one with no scope, and requests that carry a key's id as API
    Gateway's events do (from the KEY_ID header)."""
    apigateway = boto3.client("apigateway", region_name=REGION)
    real_client = aws.client
    monkeypatch.setattr(
        aws,
        "client",
        lambda service, region=None, **options: (
            apigateway if service == "apigateway" else real_client(service, region, **options)
        ),
    )
    convert = LambdaEventConverter.create_lambda_event

    def with_key_id(self, method, path, headers, body=None):
        event = convert(self, method, path, headers, body)
        if KEY_ID in event["headers"]:
            event["requestContext"]["identity"]["apiKeyId"] = event["headers"].pop(KEY_ID)
        return event

    monkeypatch.setattr(LambdaEventConverter, "create_lambda_event", with_key_id)
    wiring.reset()
    made = {
        scope: apigateway.create_api_key(name=f"faceprint-dev-{scope}", tags={scopes.SCOPE_TAG: scope})["id"]
        for scope in scopes.SCOPES
    }
    made["none"] = apigateway.create_api_key(name="someone-elses")["id"]
    yield made
    wiring.reset()


REQUESTS = {
    "read": [("GET", "/images"), ("GET", "/info"), ("POST", "/search"), ("GET", "/people/suggestions")],
    "write": [("PUT", "/index/k.jpg"), ("DELETE", "/images/k.jpg"), ("PUT", "/people/keanu")],
    "admin": [("DELETE", "/people/keanu")],
}


def _send(client, method: str, path: str, key_id: str):
    if method == "PUT" and path.startswith("/index/") or path == "/search":
        return client.http.request(
            method, path, body=photo("Keanu-Reeves.jpg"), headers={"Content-Type": "image/jpeg", KEY_ID: key_id}
        )
    if method == "PUT":
        return client.http.put(
            path, body=b'{"name": "Keanu"}', headers={"Content-Type": "application/json", KEY_ID: key_id}
        )
    return client.http.request(method, path, headers={KEY_ID: key_id})


@pytest.mark.parametrize("scope", scopes.SCOPES)
def test_each_key_may_call_the_routes_of_its_scope_and_those_below(client, keys, scope):
    for needed, requests in REQUESTS.items():
        allowed = scopes.SCOPES.index(scope) >= scopes.SCOPES.index(needed)
        for method, path in requests:
            reply = _send(client, method, path, keys[scope])
            if allowed:
                assert reply.status_code < 400, (scope, method, path, reply.body[:200])
            else:
                assert reply.status_code == 403, (scope, method, path)
                assert f"needs a{'n' if needed == 'admin' else ''} {needed} key" in reply.json_body["message"]


def test_a_key_without_a_scope_is_refused(client, keys):
    reply = client.http.get("/info", headers={KEY_ID: keys["none"]})
    assert reply.status_code == 403 and scopes.SCOPE_TAG in reply.json_body["message"]


def test_a_route_no_scope_names_is_admins():
    assert scopes.scope_needed("POST", "/people/{person_id}/erase") == "admin"
    assert scopes.scope_needed("GET", "/audit") == "admin"


def test_requests_without_a_key_id_are_left_to_api_gateway(client, keys):
    """The console, its files and the API document are not behind a key."""
    assert client.http.get("/").status_code == 200


def test_a_keys_scope_is_looked_up_once_in_a_while():
    calls = []

    class Client:
        def get_api_key(self, apiKey):
            calls.append(apiKey)
            return {"tags": {scopes.SCOPE_TAG: "read"}}

    now = [0.0]
    lookup = api_keys.ApiKeyScopes(Client(), scopes.SCOPE_TAG, scopes.SCOPES, "dev", clock=lambda: now[0])
    assert [lookup.scope_of("k") for _ in range(5)] == ["read"] * 5 and calls == ["k"]
    now[0] = api_keys.CACHE_SECONDS + 1
    assert lookup.scope_of("k") == "read" and calls == ["k", "k"]


def test_every_listed_route_exists_and_deleting_a_person_is_admins():
    served = {(method, path) for path, methods in app.routes.items() for method in methods}
    assert served >= scopes.READ | scopes.WRITE
    assert scopes.scope_needed("DELETE", "/people/{person_id}") == "admin"


def test_a_search_of_every_face_searches_at_most_the_cap_on_aws(client, stage, monkeypatch):
    from chalicelib.aws import rekognition

    monkeypatch.setattr(rekognition, "MAX_SEARCHED_FACES", 2)
    put_photo(client, "group.jpg", photo(GROUP))
    stage.events.deliver()
    before = stage.rekognition.operations().count("SearchFacesByImage")
    reply = client.http.post("/search?faces=all", body=photo(GROUP), headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200 and len(reply.json_body["searchedFaces"]) == 2
    assert stage.rekognition.operations().count("SearchFacesByImage") - before == 2
    info = client.http.get("/info").json_body
    assert info["limits"]["maxSearchedFaces"] == limits.MAX_SEARCHED_FACES


def test_a_search_of_every_face_searches_at_most_the_cap_offline(tmp_path, monkeypatch):
    from chalicelib.embedded import engine

    monkeypatch.setattr(engine, "MAX_SEARCHED_FACES", 2)
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    with Client(app, stage_name="local") as local:
        reply = local.http.post("/search?faces=all", body=photo(GROUP), headers={"Content-Type": "image/jpeg"})
    assert reply.status_code == 200 and len(reply.json_body["searchedFaces"]) == 2
