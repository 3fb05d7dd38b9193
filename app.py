"""Faceprint's HTTP API and S3 event handler. Each view translates the
request, calls one service function and returns; errors become JSON
replies through chalicelib.api.replies."""

import functools
import logging
import os
import time

from chalice import Response

from chalicelib import wiring
from chalicelib.api import api_key as auth
from chalicelib.api.console import console
from chalicelib.api.metadata import metadata_from_headers
from chalicelib.api.openapi import openapi
from chalicelib.api.replies import error_reply
from chalicelib.api.requests import body_bytes
from chalicelib.api.threadsafe import ThreadSafeChalice
from chalicelib.core import limits, logs, service
from chalicelib.core.errors import BadRequest, ConfigurationError, FaceprintError
from chalicelib.core.images import UNSUPPORTED_TYPE_MESSAGE
from chalicelib.core.keys import key_from_path, validate_key

app = ThreadSafeChalice(app_name="faceprint")
app.log.setLevel(logging.INFO)
app.register_middleware(logs.log_requests, "http")
app.register_middleware(auth.allow_origins, "http")
app.register_middleware(auth.require_api_key, "http")
app.register_blueprint(console)
app.register_blueprint(openapi)
IMAGE_TYPES = [*limits.ACCEPTED_TYPES, "application/octet-stream", "text/plain"]
# Every body type of those routes is binary (chalice deploy refuses a route
# that mixes binary and non-binary types): text/plain carries base64 text
# (the old Postman collection). image/* is there for GET /images/{key}/file:
# Chalice only sends a binary reply to an Accept header naming one of these.
app.api.binary_types.extend(t for t in [*IMAGE_TYPES, "image/*"] if t not in app.api.binary_types)


def _json_errors(view):
    """Every view's errors become JSON replies (chalicelib.api.replies)."""

    @functools.wraps(view)
    def guarded(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except (FaceprintError, ConfigurationError) as e:
            return error_reply(e)

    return guarded


@app.middleware("http")
def _chalice_errors_as_json(event, get_response):
    """Chalice's own errors (415 content type, 405 method, 500) use
    {"Code", "Message"}; give them the API's {"error", "message"} shape."""
    response = get_response(event)
    if response.status_code >= 400 and isinstance(response.body, dict) and "Code" in response.body:
        body = {"error": response.body["Code"], "message": response.body.get("Message", "")}
        if response.status_code == 415:
            body["message"] += ". " + UNSUPPORTED_TYPE_MESSAGE
        response.body = body
    return response


@app.route("/index/{filename}", methods=["PUT", "POST"], content_types=IMAGE_TYPES, api_key_required=True)
@_json_errors
def index_image(filename):
    request = app.current_request
    key = key_from_path(filename)
    metadata = metadata_from_headers(request.headers)
    reply = service.upload_image(wiring.services(), key, body_bytes(request.raw_body), metadata)
    return Response(body=reply, status_code=201)


@app.route("/images/{key}", methods=["GET"], api_key_required=True)
@_json_errors
def get_image(key):
    return service.get_image(wiring.services(), key_from_path(key))


@app.route("/search", methods=["POST", "PUT"], content_types=IMAGE_TYPES, api_key_required=True)
@_json_errors
def search():
    request = app.current_request
    params = request.query_params or {}
    threshold = _number(params, "threshold", float, limits.DEFAULT_THRESHOLD, 0, 100)
    max_matches = _number(params, "max", int, limits.DEFAULT_MAX_MATCHES, 1, limits.MAX_MATCHES)
    which = params.get("faces", "largest")
    if which not in ("largest", "all"):
        raise BadRequest("Query parameter 'faces' must be 'largest' (the default) or 'all'.")
    search_faces = service.search_every_face if which == "all" else service.search_image
    return search_faces(wiring.services(), body_bytes(request.raw_body), threshold, max_matches)


@app.route("/images", methods=["GET"], api_key_required=True)
@_json_errors
def list_images():
    limit, token = _page(app.current_request.query_params)
    return service.list_images(wiring.services(), limit, token)


@app.route("/images/{key}/file", methods=["GET"], api_key_required=True)
@_json_errors
def get_image_file(key):
    data, content_type = service.get_photo(wiring.services(), key_from_path(key))
    return Response(body=data, headers={"Content-Type": content_type}, status_code=200)


@app.route("/images/{key}", methods=["DELETE"], api_key_required=True)
@_json_errors
def delete_image(key):
    return service.delete_image(wiring.services(), key_from_path(key))


@app.route("/faces", methods=["GET"], api_key_required=True)
@_json_errors
def list_faces():
    params = app.current_request.query_params or {}
    limit, token = _page(params)
    image = validate_key(params["image"]) if "image" in params else None
    return service.list_faces(wiring.services(), limit, token, image)


@app.route("/faces/{face_id}", methods=["GET"], api_key_required=True)
@_json_errors
def get_face(face_id):
    return service.get_face(wiring.services(), face_id)


@app.route("/faces/{face_id}", methods=["DELETE"], api_key_required=True)
@_json_errors
def delete_face(face_id):
    return service.delete_face(wiring.services(), face_id)


@app.route("/info", methods=["GET"], api_key_required=True)
@_json_errors
def info():
    return service.describe(wiring.services())


@app.on_s3_event(bucket=os.environ.get("FACEPRINT_BUCKET", "faceprint-photos"), events=["s3:ObjectCreated:*"])
def index_stored_photo(event):
    """Every photo that lands in the bucket, by the API or any other way."""
    started = time.perf_counter()
    image = service.index_stored_photo(wiring.services(), event.key)
    logs.log_indexed(event.key, image, started, getattr(event.context, "aws_request_id", None))


def _page(params: dict | None) -> tuple[int, str | None]:
    params = params or {}
    return _number(params, "limit", int, limits.DEFAULT_PAGE_SIZE, 1, limits.MAX_PAGE_SIZE), params.get("next")


def _number(params: dict, name: str, kind: type, default, low, high):
    if name not in params:
        return default
    try:
        value = kind(params[name])
    except ValueError:
        raise BadRequest(f"Query parameter {name!r} must be a number from {low} to {high}.") from None
    if not low <= value <= high:
        raise BadRequest(f"Query parameter {name!r} must be from {low} to {high}.")
    return value
