"""The OpenAPI document names every route Chalice serves, is served at
GET /openapi.json, and schemathesis, fuzzing a real `chalice local` from it,
never gets a 5xx nor a reply the document does not describe."""

import json

import pytest
import schemathesis
from chalice.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import app
from chalicelib import __version__
from chalicelib.api.openapi import DOCUMENT
from chalicelib.core import limits, naming
from tests.support.live_server import live_server

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
# Per operation (27 of them) and mode: enough to send junk to every parameter and
# body type, bounded so that the run stays well under a minute on 2 cores.
EXAMPLES = 50


def _document() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def test_the_document_and_chalice_name_the_same_routes_and_methods():
    served = {(path, method.lower()) for path, views in app.routes.items() for method in views}
    documented = {(path, method) for path, item in _document()["paths"].items() for method in item if method in METHODS}
    assert served - documented == set(), "routes missing from chalicelib/api/openapi.json"
    assert documented - served == set(), "documented routes that Chalice does not serve"


def test_the_document_names_the_body_types_each_route_takes():
    documented = {
        (path, method): set(operation["requestBody"]["content"])
        for path, item in _document()["paths"].items()
        for method, operation in item.items()
        if method in METHODS and "requestBody" in operation
    }
    for (path, method), types in documented.items():
        assert types == set(app.routes[path][method.upper()].content_types), (path, method)


def test_every_operation_documents_its_errors_in_the_json_error_shape():
    doc = _document()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"] and operation["responses"], (path, method)
            for status, reply in operation["responses"].items():
                if status.startswith(("4", "5")):
                    name = reply["$ref"].rsplit("/", 1)[1]
                    schema = json.dumps(doc["components"]["responses"][name]["content"]["application/json"])
                    assert "#/components/schemas/Error" in schema, (path, method, status)
    assert doc["components"]["schemas"]["Error"]["required"] == ["error", "message"]


def test_the_document_lists_the_limits_get_info_reports():
    info = _document()["components"]["schemas"]["Info"]
    assert info["properties"]["limits"]["required"] == sorted(limits.as_dict())
    assert _document()["info"]["version"] == __version__


def test_the_document_describes_what_the_naming_rule_adds_to_every_search_reply():
    schemas = _document()["components"]["schemas"]
    for reply in ("SearchReply", "SearchAllReply", "SearchPeopleReply", "FaceMatchesReply"):
        assert {"threshold", "thresholdReason"} <= set(schemas[reply]["required"]), reply
    for reply in ("SearchReply", "FaceMatchesReply"):
        assert "identities" in schemas[reply]["required"], reply
    assert "identities" in schemas["SearchAllReply"]["properties"]["searchedFaces"]["items"]["required"]
    identity = naming.Identity("name:Ann", "Ann", True, 90.0, 1, "ann")
    (judged,) = naming.judge([identity], 10, naming.StrangerModel(70, 3, ""), None)
    assert set(judged.as_dict()) == set(schemas["Identity"]["properties"])
    assert set(schemas["Identity"]["required"]) == set(judged.as_dict()) - {"personId"}
    assert {"expectedStrangers", "confident"} <= set(schemas["Match"]["required"])
    people = schemas["SearchPeopleReply"]["properties"]["people"]["items"]["required"]
    assert {"expectedStrangers", "confident", "margin", "runnerUp", "reason"} <= set(people)
    described = naming.describe(10, naming.StrangerModel(70, 3, ""))
    assert schemas["Info"]["properties"]["naming"]["required"] == list(described)


def test_get_openapi_json_serves_the_document(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(tmp_path / "data"))
    with Client(app, stage_name="local") as client:
        reply = client.http.get("/openapi.json")
    assert (
        reply.status_code == 200
        and {k.lower(): v for k, v in reply.headers.items()}["content-type"] == "application/json"
    )
    assert reply.json_body == _document()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("fuzz") / "data") as running:
        yield running


# Driven by hypothesis directly: schemathesis' pytest plugin does not run
# under pytest 9 (it reads Function._nodeid, which pytest 9 dropped).
FUZZED = schemathesis.openapi.from_path(DOCUMENT)


def _breakable(operation: dict) -> bool:
    """Whether schemathesis can make an invalid request to it: a path
    parameter alone (any non-empty string) cannot be broken."""
    inputs = [p for p in operation.get("parameters", []) if p["in"] != "path"]
    return bool(inputs or operation.get("requestBody") or operation["security"])


# Valid requests, then requests that break the document (wrong types, out
# of range values, junk bodies), for every operation that takes any input.
OPERATIONS = [
    (path, method.upper(), mode)
    for path, item in _document()["paths"].items()
    for method, operation in item.items()
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode == GenerationMode.POSITIVE or _breakable(operation)
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.mark.parametrize(("path", "method", "mode"), OPERATIONS, ids=[f"{m} {p} {g}" for p, m, g in OPERATIONS])
def test_fuzzed_requests_never_get_a_5xx_nor_an_undocumented_reply(server, path, method, mode):
    statuses = []

    @given(case=FUZZED[path][method].as_strategy(mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        response = case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=60)
        statuses.append(response.status_code)

    fuzz()
    assert statuses, "schemathesis sent nothing"
