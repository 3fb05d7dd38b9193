"""The Rekognition engine against botocore's Stubber: every request and
reply is checked against the real Rekognition service model."""

import http.server
import io
import json
import random
import threading

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from PIL import Image

from chalicelib.aws import clients
from chalicelib.aws.rekognition import (
    FACE_COUNT_SECONDS,
    MAX_DELETE_IDS,
    MAX_SEARCH_BYTES,
    STRANGERS,
    RekognitionEngine,
    fit_for_rekognition,
)
from chalicelib.core import errors
from chalicelib.core.naming import StrangerModel
from chalicelib.core.ports import PhotoVersion
from tests.support.photos import photo

MODEL = "7.0"
BOX = {"Width": 0.2, "Height": 0.3, "Left": 0.1, "Top": 0.1}


@pytest.fixture
def client():
    rekognition = boto3.client(
        "rekognition", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    with Stubber(rekognition) as stub:
        rekognition.stub = stub
        yield rekognition
        stub.assert_no_pending_responses()


@pytest.fixture
def engine(client):
    return RekognitionEngine(client, "faces-test", "photos-test", quality_filter="HIGH", max_faces=7, stage="test")


def _sent(client, operation: str) -> list[dict]:
    """The parameters of every `operation` call the client makes."""
    seen = []
    client.meta.events.register(
        f"provide-client-params.rekognition.{operation}", lambda params, **_: seen.append(params)
    )
    return seen


def _face(face_id: str = "11111111-1111-1111-1111-111111111111") -> dict:
    return {
        "FaceId": face_id,
        "BoundingBox": BOX,
        "ImageId": "22222222-2222-2222-2222-222222222222",
        "Confidence": 99.5,
    }


def _noise_png(side: int) -> bytes:
    rng = random.Random(7)
    image = Image.frombytes("RGB", (side, side), bytes(rng.getrandbits(8) for _ in range(side * side * 3)))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def test_index_faces_reads_that_very_version_of_the_s3_object_with_the_stage_settings(client, engine):
    client.stub.add_response(
        "index_faces",
        {"FaceRecords": [{"Face": _face(), "FaceDetail": {"BoundingBox": BOX}}], "FaceModelVersion": MODEL},
        {
            "CollectionId": "faces-test",
            "Image": {"S3Object": {"Bucket": "photos-test", "Name": "a b/é.jpg", "Version": "v2"}},
            "ExternalImageId": "b64:YSBiL8OpLmpwZw",
            "MaxFaces": 7,
            "QualityFilter": "HIGH",
            "DetectionAttributes": ["DEFAULT"],
        },
    )
    result = engine.index_faces(PhotoVersion("a b/é.jpg", "etag", "v2"), "b64:YSBiL8OpLmpwZw")
    assert result == {
        "FaceRecords": [{"Face": _face(), "FaceDetail": {"BoundingBox": BOX}}],
        "FaceModelVersion": MODEL,
        "UnindexedFaces": [],
    }


def test_search_passes_threshold_and_max_and_returns_the_matches(client, engine):
    match = {"Similarity": 97.0, "Face": _face()}
    client.stub.add_response(
        "search_faces_by_image",
        {
            "SearchedFaceBoundingBox": BOX,
            "SearchedFaceConfidence": 99.0,
            "FaceMatches": [match],
            "FaceModelVersion": MODEL,
        },
        {
            "CollectionId": "faces-test",
            "Image": {"Bytes": b"\xff\xd8\xffdata"},
            "FaceMatchThreshold": 85.5,
            "MaxFaces": 3,
        },
    )
    result = engine.search_faces_by_image(b"\xff\xd8\xffdata", 85.5, 3)
    assert result["FaceMatches"] == [match]
    assert result["SearchedFaceBoundingBox"] == BOX


def test_no_face_in_the_query_is_an_empty_result_with_the_collection_model(client, engine):
    client.stub.add_client_error(
        "search_faces_by_image", "InvalidParameterException", "There are no faces in the image. Should be at least 1."
    )
    client.stub.add_response("describe_collection", {"FaceCount": 3, "FaceModelVersion": MODEL})
    client.stub.add_client_error("search_faces_by_image", "InvalidParameterException", "no faces")
    assert engine.search_faces_by_image(b"\xff\xd8\xff", 80.0, 10) == {"FaceMatches": [], "FaceModelVersion": MODEL}
    # The model version is asked once: a second empty search makes one call.
    assert engine.search_faces_by_image(b"\xff\xd8\xff", 80.0, 10) == {"FaceMatches": [], "FaceModelVersion": MODEL}


@pytest.mark.parametrize(
    "code, expected",
    [
        ("ThrottlingException", errors.ServiceUnavailable),
        ("ProvisionedThroughputExceededException", errors.ServiceUnavailable),
        ("LimitExceededException", errors.ServiceUnavailable),
        ("InvalidImageFormatException", errors.InvalidImage),
        ("ImageTooLargeException", errors.PayloadTooLarge),
        ("InvalidS3ObjectException", errors.InvalidImage),
    ],
)
def test_rekognition_errors_become_the_api_errors(client, engine, code, expected):
    client.stub.add_client_error("index_faces", code, "nope")
    with pytest.raises(expected) as raised:
        engine.index_faces(PhotoVersion("k.jpg", "etag"), "k.jpg")
    assert raised.value.__cause__.response["Error"]["Code"] == code


def test_throttling_is_a_503_with_retry_after():
    assert errors.ServiceUnavailable.status == 503
    assert errors.ServiceUnavailable.retry_after_seconds >= 1


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "AccessDeniedException"])
def test_a_missing_or_forbidden_collection_names_it_and_the_stage(client, engine, code):
    client.stub.add_client_error("describe_collection", code, "gone")
    with pytest.raises(errors.ConfigurationError) as raised:
        engine.describe()
    assert "'faces-test'" in str(raised.value)
    assert "'test'" in str(raised.value)


def test_an_unexpected_error_code_is_not_disguised(client, engine):
    client.stub.add_client_error("describe_collection", "ValidationException", "a bug of ours", http_status_code=400)
    with pytest.raises(Exception) as raised:
        engine.describe()
    assert not isinstance(raised.value, errors.FaceprintError | errors.ConfigurationError)


@pytest.mark.parametrize(("code", "status"), [("InternalServerError", 500), ("SomethingNew", 502)])
def test_a_failure_on_aws_side_is_unavailable_and_says_which_call(client, engine, code, status):
    """Still there after botocore's retries: a 503 to API clients, and a
    failed attempt with a reason that names the call to indexing."""
    client.stub.add_client_error("describe_collection", code, "boom", http_status_code=status)
    with pytest.raises(errors.ServiceUnavailable) as raised:
        engine.describe()
    assert not isinstance(raised.value, errors.Throttled)
    assert raised.value.message == f"DescribeCollection failed on AWS's side ({code}); retry after a pause."


def test_a_query_over_five_megabytes_is_scaled_down_to_fit(client, engine):
    big = _noise_png(1500)
    assert len(big) > MAX_SEARCH_BYTES
    sent = _sent(client, "SearchFacesByImage")
    client.stub.add_response("search_faces_by_image", {"FaceMatches": [], "FaceModelVersion": MODEL})
    engine.search_faces_by_image(big, 80.0, 10)
    data = sent[0]["Image"]["Bytes"]
    assert len(data) <= MAX_SEARCH_BYTES
    assert Image.open(io.BytesIO(data)).format == "JPEG"


def test_a_query_within_the_limit_is_sent_untouched():
    data = photo("obama.jpg")
    assert fit_for_rekognition(data) is data


def test_delete_faces_goes_in_batches_of_4096(client, engine):
    ids = [f"{i:08d}-0000-0000-0000-000000000000" for i in range(MAX_DELETE_IDS + 904)]
    client.stub.add_response(
        "delete_faces", {"DeletedFaces": ids[:MAX_DELETE_IDS]}, {"CollectionId": "faces-test", "FaceIds": ids[:4096]}
    )
    client.stub.add_response(
        "delete_faces", {"DeletedFaces": ids[MAX_DELETE_IDS:]}, {"CollectionId": "faces-test", "FaceIds": ids[4096:]}
    )
    engine.delete_faces(ids)


def test_deleting_no_faces_calls_nothing(engine):
    engine.delete_faces([])


def test_search_all_faces_detects_once_then_searches_each_face_largest_first(client, engine):
    small = {"Width": 0.1, "Height": 0.1, "Left": 0.7, "Top": 0.2}
    large = {"Width": 0.25, "Height": 0.3, "Left": 0.2, "Top": 0.2}
    client.stub.add_response(
        "detect_faces",
        {"FaceDetails": [{"BoundingBox": small, "Confidence": 90.0}, {"BoundingBox": large, "Confidence": 99.0}]},
    )
    match = {"Similarity": 99.0, "Face": _face()}
    client.stub.add_response(
        "search_faces_by_image",
        {"SearchedFaceBoundingBox": BOX, "FaceMatches": [match], "FaceModelVersion": MODEL},
        {"CollectionId": "faces-test", "Image": {"Bytes": ANY}, "FaceMatchThreshold": 80.0, "MaxFaces": 5},
    )
    client.stub.add_client_error("search_faces_by_image", "InvalidParameterException", "no faces")
    client.stub.add_response("describe_collection", {"FaceCount": 1, "FaceModelVersion": MODEL})
    results = engine.search_all_faces_by_image(photo("obama.jpg"), 80.0, 5)
    assert [r["SearchedFaceBoundingBox"] for r in results] == [large, small]
    assert results[0]["FaceMatches"] == [match]
    assert results[1]["FaceMatches"] == []
    assert results[1]["SearchedFaceConfidence"] == 90.0


def test_search_all_faces_of_a_photo_without_faces_is_empty(client, engine):
    client.stub.add_response("detect_faces", {"FaceDetails": []})
    assert engine.search_all_faces_by_image(photo("obama.jpg"), 80.0, 5) == []


def test_list_faces_pages_with_the_collection_token(client, engine):
    client.stub.add_response(
        "list_faces",
        {"Faces": [_face()], "NextToken": "t2", "FaceModelVersion": MODEL},
        {"CollectionId": "faces-test", "MaxResults": 1, "NextToken": "t1"},
    )
    page = engine.list_faces(1, "t1")
    assert page.items == [_face()]
    assert page.next == "t2"


def test_describe_reports_the_collection(client, engine):
    client.stub.add_response("describe_collection", {"FaceCount": 42, "FaceModelVersion": MODEL})
    assert engine.describe() == {
        "engine": "rekognition",
        "model": MODEL,
        "faces": 42,
        "limits": {"maxUploadBytesThroughApi": 4_400_000},
    }


def test_the_face_count_is_asked_once_a_minute_and_describe_refreshes_it(client):
    now = [1000.0]
    engine = RekognitionEngine(client, "faces-test", "photos-test", clock=lambda: now[0])
    client.stub.add_response("describe_collection", {"FaceCount": 1_000_000, "FaceModelVersion": MODEL})
    assert engine.face_count() == 1_000_000
    now[0] += FACE_COUNT_SECONDS - 1
    assert engine.face_count() == 1_000_000  # no second DescribeCollection: the stub holds no more replies
    now[0] += 1
    client.stub.add_response("describe_collection", {"FaceCount": 1_000_500, "FaceModelVersion": MODEL})
    assert engine.face_count() == 1_000_500
    client.stub.add_response("describe_collection", {"FaceCount": 7, "FaceModelVersion": MODEL})
    assert engine.describe()["faces"] == 7 and engine.face_count() == 7


def test_the_stranger_model_is_the_stages_or_else_the_assumed_one(client):
    assert RekognitionEngine(client, "c", "b").stranger_model() == STRANGERS
    mine = StrangerModel(50.0, 8.0, "FACEPRINT_STRANGER_SIMILARITY")
    assert RekognitionEngine(client, "c", "b", strangers=mine).stranger_model() == mine


class _Failing(http.server.BaseHTTPRequestHandler):
    """A Rekognition endpoint that answers every call with a 500."""

    seen: list[str] = []

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).seen.append(self.headers["X-Amz-Target"])
        body = json.dumps({"__type": "InternalServerError", "message": "try later"}).encode()
        self.send_response(500)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_every_client_tries_a_call_4_times_in_all_as_the_guide_says():
    """botocore's `max_attempts` counts retries (4 made 5 calls); the
    clients' configuration counts attempts."""
    _Failing.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        rekognition = boto3.client(
            "rekognition",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{server.server_address[1]}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=clients.config_for("rekognition"),
        )
        with pytest.raises(ClientError):
            rekognition.describe_collection(CollectionId="faces-test")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert clients.MAX_ATTEMPTS == 4
    assert _Failing.seen == ["RekognitionService.DescribeCollection"] * 4


# The stage's search budget, a full collection, the breaker's probe, a call that never answers.


class _Turns:
    """A search budget that counts its turns and has `left` of them."""

    def __init__(self, left: int) -> None:
        self.taken, self.left = 0, left

    def __call__(self, call):
        if self.taken == self.left:
            raise errors.TooManyRequests("over budget", 2)
        self.taken += 1
        return call()


def test_each_face_of_a_search_of_every_face_takes_its_turn_on_the_search_budget(client):
    turns = _Turns(left=2)
    engine = RekognitionEngine(client, "faces-test", "photos-test", search_call=turns)
    boxes = [{"Width": 0.1 * (3 - n), "Height": 0.1, "Left": 0.3 * n, "Top": 0.2} for n in range(3)]
    client.stub.add_response("detect_faces", {"FaceDetails": [{"BoundingBox": b, "Confidence": 99.0} for b in boxes]})
    for _ in range(2):
        client.stub.add_response("search_faces_by_image", {"FaceMatches": [], "FaceModelVersion": MODEL})
    with pytest.raises(errors.TooManyRequests) as refused:  # three faces: a third turn the budget has not
        engine.search_all_faces_by_image(photo("Keanu-Reeves.jpg"), 80.0, 5)
    assert turns.taken == 2 and refused.value.status == 429 and refused.value.retry_after_seconds == 2


def test_a_full_collection_is_said_so_not_counted_as_a_failure_that_may_pass(client, engine):
    client.stub.add_client_error(
        "index_faces", "ServiceQuotaExceededException", "The size of the collection exceeds the allowed limit."
    )
    with pytest.raises(errors.CollectionFull) as full:
        engine.index_faces(PhotoVersion("a.jpg", "e", "v1"), "a.jpg")
    assert isinstance(full.value, errors.ImageRejected) and full.value.status == 507
    assert "faces-test" in full.value.message and "A full collection" in full.value.message


def test_the_collection_says_how_much_room_it_has_left(client):
    engine = RekognitionEngine(client, "faces-test", "photos-test", max_collection_faces=1000)
    client.stub.add_response("describe_collection", {"FaceCount": 990, "FaceModelVersion": MODEL})
    assert engine.room_left() == 10
    assert RekognitionEngine(client, "faces-test", "photos-test").room_left() is None


def test_the_breakers_probe_is_a_detect_faces_on_a_stored_photo(client, engine):
    client.stub.add_response(
        "detect_faces",
        {"FaceDetails": []},
        {"Image": {"S3Object": {"Bucket": "photos-test", "Name": "ok.jpg"}}, "Attributes": ["DEFAULT"]},
    )
    assert engine.probe("ok.jpg") is True
    client.stub.add_client_error("detect_faces", "InternalServerError", http_status_code=500)
    assert engine.probe("ok.jpg") is False
    client.stub.add_client_error("detect_faces", "InvalidS3ObjectException", "gone")
    assert engine.probe("gone.jpg") is None


def test_a_call_that_never_answers_is_the_services_failure():
    """botocore's read timeout, after its attempts: ServiceUnavailable (the
    circuit breaker's to judge), never an unexpected error charged to a photo."""
    from botocore.exceptions import ReadTimeoutError

    with (
        pytest.raises(errors.ServiceUnavailable, match="did not answer"),
        clients.translated("the collection", "test"),
    ):
        raise ReadTimeoutError(endpoint_url="https://rekognition.us-east-1.amazonaws.com/")
