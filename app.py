"""Faceprint's HTTP API, its indexing workers (the queue of the bucket's
events) and its scheduled re-drive. Each view translates the request, calls
one use case and returns; errors become JSON replies in
chalicelib.api.replies."""

import logging
import os
import time

from chalice import Rate, Response

from chalicelib import wiring
from chalicelib.api import api_key, context, cors, gateway, guard, request_log, scopes, uploads
from chalicelib.api.console import console
from chalicelib.api.docs_page import docs
from chalicelib.api.metadata import metadata_from_headers
from chalicelib.api.openapi import openapi
from chalicelib.api.params import flag, key_from_path, key_from_query, number, page, person_from_path, photos_to_erase
from chalicelib.api.replies import json_errors, reshape_chalice_errors
from chalicelib.api.requests import json_image, json_number, json_object
from chalicelib.api.threadsafe import ThreadSafeChalice
from chalicelib.core import erasure, index_queue, indexing, library, limits, logs, people, searching
from chalicelib.core.config import index_workers_at_import
from chalicelib.core.errors import BadRequest
from chalicelib.core.ports import QueuedMessage
from chalicelib.ops import maintenance

app = ThreadSafeChalice(app_name="faceprint")
gateway.add_to_deployed_api()  # chalice deploy/package: API Gateway's own errors in the API's shape
wiring.stop_on_signals()  # chalice local: Ctrl-C and SIGTERM stop the server and its workers within seconds
app.log.setLevel(logging.INFO)
# Outermost first: settings are read once, then logged, checked, answered.
app.register_middleware(context.read_settings, "http")
app.register_middleware(request_log.log_requests, "http")
app.register_middleware(guard.refuse_other_sites, "http")
app.register_middleware(cors.allow_origins, "http")
app.register_middleware(api_key.require_api_key, "http")
app.register_middleware(scopes.require_scope, "http")
app.register_middleware(guard.require_json_bodies(app), "http")
app.register_middleware(reshape_chalice_errors(app), "http")
app.register_blueprint(console)
app.register_blueprint(openapi)
app.register_blueprint(docs)
IMAGE_TYPES = [*limits.ACCEPTED_TYPES, uploads.UNTYPED, "text/plain", uploads.MULTIPART, uploads.FORM]
# Every body type of those routes is binary (chalice deploy refuses a route
# that mixes binary and non-binary types), so API Gateway passes their bytes
# unchanged: text/plain carries base64 text (the old Postman collection), the
# forms a photo (api/uploads.py). image/* is there for GET /images/{key}/file:
# Chalice only sends a binary reply to an Accept header naming one of these.
app.api.binary_types.extend(t for t in [*IMAGE_TYPES, "image/*"] if t not in app.api.binary_types)
app.register_middleware(uploads.take_untyped_uploads(app, IMAGE_TYPES), "http")


@app.route("/index/{filename}", methods=["PUT", "POST"], content_types=IMAGE_TYPES, api_key_required=True)
@json_errors
def index_image(filename):
    request = app.current_request
    key = key_from_path(filename, stored=False)
    metadata = metadata_from_headers(request.headers)
    reply = indexing.upload_image(context.services(), key, uploads.uploaded_photo(request), metadata)
    return Response(body=reply, status_code=201)


@app.route("/images/{key}", methods=["GET"], api_key_required=True)
@json_errors
def get_image(key):
    return library.get_image(context.services(), key_from_path(key))


@app.route("/search", methods=["POST", "PUT"], content_types=IMAGE_TYPES, api_key_required=True)
@json_errors
def search():
    request = app.current_request
    params = request.query_params or {}
    threshold = number(params, "threshold", float, None, 0, 100)  # None: naming.py decides
    max_matches = number(params, "max", int, limits.DEFAULT_MAX_MATCHES, 1, limits.MAX_MATCHES)
    which = params.get("faces", "largest")
    if which not in ("largest", "all"):
        raise BadRequest("Query parameter 'faces' must be 'largest' (the default) or 'all'.")
    search_faces = searching.search_every_face if which == "all" else searching.search_image
    return search_faces(context.services(), uploads.uploaded_photo(request), threshold, max_matches)


@app.route("/images", methods=["GET"], api_key_required=True)
@json_errors
def list_images():
    limit, token = page(app.current_request.query_params)
    return library.list_images(context.services(), limit, token)


@app.route("/images/{key}/file", methods=["GET"], api_key_required=True)
@json_errors
def get_image_file(key):
    data, url, content_type = library.get_photo(context.services(), key_from_path(key))
    if url is not None:
        # On AWS: a short-lived S3 link, whatever the photo's size (a Lambda
        # reply holds at most 6 MB).
        return Response(body="", headers={"Location": url, "Cache-Control": "no-store"}, status_code=307)
    return Response(body=data, headers={"Content-Type": content_type}, status_code=200)


@app.route("/images/{key}", methods=["DELETE"], api_key_required=True)
@json_errors
def delete_image(key):
    return library.delete_image(context.services(), key_from_path(key))


@app.route("/faces", methods=["GET"], api_key_required=True)
@json_errors
def list_faces():
    params = app.current_request.query_params or {}
    limit, token = page(params)
    if "person" in params:
        if "image" in params:
            raise BadRequest("Ask for the faces of one image or of one person, not both.")
        return people.faces_of_person(context.services(), params["person"])
    image = key_from_query(params["image"]) if "image" in params else None
    return library.list_faces(context.services(), limit, token, image)


@app.route("/faces/{face_id}/matches", methods=["GET"], api_key_required=True)
@json_errors
def face_matches(face_id):
    params = app.current_request.query_params or {}
    threshold = number(params, "threshold", float, None, 0, 100)  # None: naming.py decides
    max_matches = number(params, "max", int, limits.DEFAULT_MAX_MATCHES, 1, limits.MAX_MATCHES)
    return people.face_matches(context.services(), face_id, threshold, max_matches)


@app.route("/faces/{face_id}", methods=["GET"], api_key_required=True)
@json_errors
def get_face(face_id):
    return library.get_face(context.services(), face_id)


@app.route("/faces/{face_id}", methods=["DELETE"], api_key_required=True)
@json_errors
def delete_face(face_id):
    return library.delete_face(context.services(), face_id)


@app.route("/people", methods=["GET"], api_key_required=True)
@json_errors
def list_people():
    limit, token = page(app.current_request.query_params)
    return people.list_people(context.services(), limit, token)


@app.route("/people/{person_id}", methods=["PUT"], content_types=["application/json"], api_key_required=True)
@json_errors
def put_person(person_id):
    body = json_object(app.current_request.raw_body, '{"name": "Keanu Reeves"}')
    person, created = people.put_person(context.services(), person_from_path(person_id), body.get("name"))
    return Response(body={"person": person}, status_code=201 if created else 200)


@app.route("/people/{person_id}", methods=["GET"], api_key_required=True)
@json_errors
def get_person(person_id):
    return people.get_person(context.services(), person_from_path(person_id))


@app.route("/people/{person_id}", methods=["DELETE"], api_key_required=True)
@json_errors
def delete_person(person_id):
    """?erase=true: the erasure (POST /people/{id}/erase), so that no client
    asking for one this way gets a plain delete instead."""
    params = app.current_request.query_params
    if flag(params, "erase"):
        return _erase(person_id, params)
    return people.delete_person(context.services(), person_from_path(person_id))


@app.route("/people/{person_id}/erase", methods=["POST"], api_key_required=True)
@json_errors
def erase_person(person_id):
    return _erase(person_id, app.current_request.query_params)


def _erase(person_id: str, params: dict | None) -> Response:
    """The receipt: 200 when done, 202 when the request's time ran out first
    (the same request again carries on)."""
    receipt = erasure.erase_person(
        context.services(),
        person_from_path(person_id),
        photos_to_erase(params),
        budget_seconds=limits.ERASURE_SECONDS_PER_REQUEST,
    )
    return Response(body={"erasure": receipt}, status_code=200 if receipt["complete"] else 202)


@app.route("/people/{person_id}/faces", methods=["POST"], content_types=["application/json"], api_key_required=True)
@json_errors
def associate_faces(person_id):
    body = json_object(app.current_request.raw_body, '{"faceIds": ["<FaceId>"], "threshold": 75}')
    threshold = json_number(body, "threshold", limits.DEFAULT_ASSOCIATE_THRESHOLD, 0, 100)
    return people.associate_faces(context.services(), person_from_path(person_id), body.get("faceIds"), threshold)


@app.route("/people/{person_id}/faces/{face_id}", methods=["DELETE"], api_key_required=True)
@json_errors
def disassociate_face(person_id, face_id):
    return people.disassociate_face(context.services(), person_from_path(person_id), face_id)


@app.route("/people/suggestions", methods=["POST"], api_key_required=True)
@json_errors
def suggest_people():
    min_faces = number(app.current_request.query_params, "minFaces", int, limits.DEFAULT_MIN_FACES, 2, 1000)
    return people.suggest_people(context.services(), min_faces)


@app.route("/people/suggestions", methods=["PUT", "DELETE"], api_key_required=True)
@json_errors
def reserved_person():
    """PUT or DELETE /people/{personId} with the id `suggestions`, which names
    the suggested people: the 400 that any other invalid id gets, not a 405."""
    people.validate_person_id("suggestions")


@app.route("/people/suggestions", methods=["GET"], api_key_required=True)
@json_errors
def list_suggestions():
    min_faces = number(app.current_request.query_params, "minFaces", int, limits.DEFAULT_MIN_FACES, 2, 1000)
    return people.list_suggestions(context.services(), min_faces)


@app.route("/search/people", methods=["POST", "PUT"], content_types=IMAGE_TYPES, api_key_required=True)
@json_errors
def search_people():
    request = app.current_request
    params = request.query_params or {}
    threshold = number(params, "threshold", float, None, 0, 100)  # None: naming.py decides
    max_people = number(params, "max", int, limits.DEFAULT_MAX_MATCHES, 1, limits.MAX_PEOPLE_MATCHES)
    return people.search_people(context.services(), uploads.uploaded_photo(request), threshold, max_people)


@app.route("/compare", methods=["POST"], content_types=["application/json"], api_key_required=True)
@json_errors
def compare():
    body = json_object(app.current_request.raw_body, '{"source": "<base64>", "target": "<base64>"}')
    threshold = json_number(body, "threshold", limits.DEFAULT_THRESHOLD, 0, 100)
    for name in ("source", "target"):  # both there before either is decoded: what is missing is said first
        if not isinstance(body.get(name), str):
            raise BadRequest(f"{name!r} must be the photo's base64 text.")
    source, target = json_image(body, "source"), json_image(body, "target")
    return people.compare(context.services(), source, target, threshold)


@app.route("/info", methods=["GET"], api_key_required=True)
@json_errors
def info():
    return library.describe(context.services())


# The queue and the workers' number come from the stage's environment, which
# Chalice sets while it loads the app to deploy or package it.
@app.on_sqs_message(
    queue=os.environ.get("FACEPRINT_INDEX_QUEUE", "faceprint-index"),
    batch_size=index_queue.BATCH_SIZE,
    maximum_concurrency=index_workers_at_import(os.environ),
)
def index_queued_photos(event):
    """Every photo that lands in the bucket or leaves it, by the API or any
    other way: the bucket's events, through the queue, a batch at a time,
    at the stage's pace (core/index_queue.py)."""
    records = event.to_dict()["Records"]
    messages = [
        QueuedMessage(r["body"], r["receiptHandle"], int(r.get("attributes", {}).get("ApproximateReceiveCount", 1)))
        for r in records
    ]
    token = logs.request_id.set(getattr(event.context, "aws_request_id", None))
    started = time.perf_counter()
    try:
        done = index_queue.handle_batch(
            wiring.services(), messages, lambda: event.context.get_remaining_time_in_millis() / 1000
        )
        logs.write({"event": "batch", **done, "durationMs": logs.ms_since(started)})
    finally:
        logs.request_id.reset(token)


@app.schedule(Rate(index_queue.REDRIVE_EVERY_SECONDS // 60, unit=Rate.MINUTES))
def redrive_pending(event):
    """Photos whose events were lost, sent to the queue again; and, as
    CloudWatch metrics (docs/deploy.md): photos stuck (pending over a day
    while the queue does not drain at the stage's pace: the alarm), pending
    over a day, the hours of work the queue holds, the collection's room."""
    started = time.perf_counter()
    svc = wiring.services()
    done = index_queue.redrive_lost(svc)
    logs.write({"event": "redrive", **done, "durationMs": logs.ms_since(started)})
    metrics = {
        "PhotosStuck": done["stuck"],
        "PhotosPendingTooLong": done["pendingTooLong"],
        "PhotosRedriven": done["redriven"],
        "QueueHoursLeft": done["hoursLeft"],
    }
    if done["collectionRoom"] is not None:
        metrics["CollectionFacesLeft"] = done["collectionRoom"]
    logs.write_metrics(svc.settings.stage, metrics)


@app.schedule(Rate(maintenance.CHECK_EVERY_HOURS, unit=Rate.HOURS))
def check_archive(event):
    """Every hour, a segment of the check (`make check-consistency
    REPAIR=1` as a schedule, resumable): what a crash can leave that no
    event or re-drive names (a face IndexFaces added before its run was
    stopped, a face item a cut-short commit wrote), and a record whose
    ObjectRemoved event was lost. What a run under way may still finish is
    left to it; photos pending are the queue's. It stops starting pages
    CHECK_MARGIN_SECONDS before its timeout, and the next run carries on."""
    started = time.perf_counter()
    svc = wiring.services()
    erased = erasure.finish_under_way(svc)  # erasures a crash or a client left halfway
    seconds = event.context.get_remaining_time_in_millis() / 1000 - maintenance.CHECK_MARGIN_SECONDS
    done = maintenance.sweep_for(svc, seconds)
    logs.write({"event": "check", **done, "erasuresFinished": len(erased), "durationMs": logs.ms_since(started)})
    logs.write_metrics(svc.settings.stage, {"DisagreementsRepaired": done["repaired"]})
