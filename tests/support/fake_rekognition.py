"""A stand-in for boto3's Rekognition client, since moto has no face
collections. It computes real faces with the embedded analyzer (dlib), reads
indexed photos from S3 through a boto3 client (moto in the tests), and holds
itself to Rekognition's contract: every request is validated against
botocore's input shape for the operation, every reply against its output
shape, and errors are botocore ClientErrors with Rekognition's codes.
IndexFaces applies QualityFilter (default AUTO) and MaxFaces as the service
documents them, with the embedded engine's quality measures (quality.py).
Users (CreateUser, AssociateFaces, SearchUsersByImage, ...) follow the
service's documented rules (UserMatchThreshold's defaults, a User's 100
faces, DeleteFaces refusing a face that belongs to a User) and score a
user on its faces as the embedded engine does (embedded/people.py).

`aws_stage` wires the whole AWS stage (moto S3, DynamoDB, SQS, CloudWatch
and API Gateway, this fake, and the bucket's events through the indexing
queue: tests/support/s3_events.py) under a Chalice stage, so the API and
the indexing workers can be tested through chalice.test.Client."""

import importlib.util
import itertools
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

import boto3
import botocore.session
import numpy as np
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator
from chalice.config import Config
from chalice.local import LambdaContext
from chalice.test import Client, TestLambdaClient
from moto import mock_aws

from app import app
from chalicelib import wiring
from chalicelib.aws import clients as aws
from chalicelib.core import index_queue, pacing
from chalicelib.core.errors import ImageRejected
from chalicelib.core.limits import MAX_FACES, MAX_FACES_PER_PERSON, MAX_IMAGE_BYTES
from chalicelib.embedded.analysis import MODEL_VERSION, Analysis
from chalicelib.embedded.engine import best_matches, bounding_box, face_detail, unindexed_face
from chalicelib.embedded.people import compare, person_similarity
from chalicelib.embedded.workers import FaceAnalyzer
from tests.support.photos import REPO
from tests.support.s3_events import S3Events

MAX_BYTES = 5 * 1024 * 1024  # Rekognition's limit for Image.Bytes
REGION = "us-east-1"
ACCOUNT = "123456789012"


@cache
def _model():
    return botocore.session.get_session().get_service_model("rekognition")


@dataclass
class _Collection:
    arn: str
    created: datetime
    faces: dict[str, dict] = field(default_factory=dict)  # FaceId -> Face (with UserId), in indexing order
    descriptors: dict[str, np.ndarray] = field(default_factory=dict)
    users: dict[str, datetime] = field(default_factory=dict)  # UserId -> created

    def faces_of(self, user_id: str) -> list[str]:
        return [face_id for face_id, face in self.faces.items() if face.get("UserId") == user_id]

    def user_matches(self, descriptor: np.ndarray, threshold: float, max_users: int) -> list[dict]:
        scored = []
        for user_id in self.users:
            own = self.faces_of(user_id)
            if own:
                score = person_similarity(descriptor, np.stack([self.descriptors[i] for i in own]))
                if score >= threshold:
                    scored.append((score, user_id))
        scored.sort(key=lambda pair: -pair[0])
        return [{"Similarity": s, "User": {"UserId": u, "UserStatus": "ACTIVE"}} for s, u in scored[:max_users]]


class RekognitionError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class FakeRekognition:
    def __init__(self, s3_client, analyzer: FaceAnalyzer | None = None) -> None:
        self._s3 = s3_client
        self._analyzer = analyzer or wiring.analyzer()  # the process's pool, shared with the embedded wiring
        self._collections: dict[str, _Collection] = {}
        self._queued_errors: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.Lock()
        self.calls: list[tuple[str, dict]] = []
        # DescribeCollection's FaceCount counts this many faces more than the
        # collection holds: a test's stand-in for a large collection.
        self.more_faces = 0

    # What the tests use to steer and observe the fake.

    def fail_next(self, operation: str, code: str, message: str = "") -> None:
        """Make the next call of `operation` (e.g. "SearchFacesByImage") fail with `code`."""
        self._queued_errors.setdefault(operation, []).append((code, message or code))

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]

    # boto3's method names.

    def create_collection(self, **params) -> dict:
        return self._call("CreateCollection", params, self._create_collection)

    def delete_collection(self, **params) -> dict:
        return self._call("DeleteCollection", params, self._delete_collection)

    def describe_collection(self, **params) -> dict:
        return self._call("DescribeCollection", params, self._describe_collection)

    def index_faces(self, **params) -> dict:
        return self._call("IndexFaces", params, self._index_faces)

    def search_faces_by_image(self, **params) -> dict:
        return self._call("SearchFacesByImage", params, self._search_faces_by_image)

    def detect_faces(self, **params) -> dict:
        return self._call("DetectFaces", params, self._detect_faces)

    def delete_faces(self, **params) -> dict:
        return self._call("DeleteFaces", params, self._delete_faces)

    def list_faces(self, **params) -> dict:
        return self._call("ListFaces", params, self._list_faces)

    def list_users(self, **params) -> dict:
        return self._call("ListUsers", params, self._list_users)

    def create_user(self, **params) -> dict:
        return self._call("CreateUser", params, self._create_user)

    def delete_user(self, **params) -> dict:
        return self._call("DeleteUser", params, self._delete_user)

    def associate_faces(self, **params) -> dict:
        return self._call("AssociateFaces", params, self._associate_faces)

    def disassociate_faces(self, **params) -> dict:
        return self._call("DisassociateFaces", params, self._disassociate_faces)

    def search_users_by_image(self, **params) -> dict:
        return self._call("SearchUsersByImage", params, self._search_users_by_image)

    def search_users(self, **params) -> dict:
        return self._call("SearchUsers", params, self._search_users)

    def search_faces(self, **params) -> dict:
        return self._call("SearchFaces", params, self._search_faces)

    def compare_faces(self, **params) -> dict:
        return self._call("CompareFaces", params, self._compare_faces)

    # The machinery.

    def _call(self, operation: str, params: dict, handler: Callable[[dict], dict]) -> dict:
        model = _model().operation_model(operation)
        report = ParamValidator().validate(params, model.input_shape)
        if report.has_errors():
            raise ParamValidationError(report=report.generate_report())
        with self._lock:
            self.calls.append((operation, params))
            queued = self._queued_errors.get(operation)
            error = queued.pop(0) if queued else None
        try:
            if error:
                raise RekognitionError(*error)
            response = handler(params)
        except RekognitionError as e:
            raise ClientError(
                {"Error": {"Code": e.code, "Message": e.message}, "ResponseMetadata": {"HTTPStatusCode": 400}},
                operation,
            ) from None
        report = ParamValidator().validate(response, model.output_shape)
        assert not report.has_errors(), f"the fake's {operation} reply breaks the model: {report.generate_report()}"
        return response

    def _collection(self, collection_id: str) -> _Collection:
        if collection_id not in self._collections:
            raise RekognitionError("ResourceNotFoundException", f"The collection id: {collection_id} does not exist")
        return self._collections[collection_id]

    def _create_collection(self, params: dict) -> dict:
        name = params["CollectionId"]
        if name in self._collections:
            raise RekognitionError("ResourceAlreadyExistsException", f"The collection id: {name} already exists")
        arn = f"aws:rekognition:{REGION}:{ACCOUNT}:collection/{name}"
        self._collections[name] = _Collection(arn, datetime.now(UTC))
        return {"StatusCode": 200, "CollectionArn": arn, "FaceModelVersion": MODEL_VERSION}

    def _delete_collection(self, params: dict) -> dict:
        self._collection(params["CollectionId"])
        del self._collections[params["CollectionId"]]
        return {"StatusCode": 200}

    def _describe_collection(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        return {
            "FaceCount": len(collection.faces) + self.more_faces,
            "FaceModelVersion": MODEL_VERSION,
            "CollectionARN": collection.arn,
            "CreationTimestamp": collection.created,
            "UserCount": len(collection.users),
        }

    def _index_faces(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        analysis = self._analyze(
            self._image_bytes(params["Image"], MAX_IMAGE_BYTES),
            quality_filter=params.get("QualityFilter", "AUTO"),
            # "IndexFaces returns no more than 100 detected faces in an image".
            max_faces=min(params.get("MaxFaces", MAX_FACES), MAX_FACES),
        )
        image_id = str(uuid.uuid4())
        records = []
        for face in analysis.faces:  # largest first, as IndexFaces sorts them
            record = {
                "FaceId": str(uuid.uuid4()),
                "BoundingBox": bounding_box(face, analysis),
                "ImageId": image_id,
                "Confidence": face.quality.confidence,
                "IndexFacesModelVersion": MODEL_VERSION,
            }
            if "ExternalImageId" in params:
                record["ExternalImageId"] = params["ExternalImageId"]
            records.append({"Face": record, "FaceDetail": face_detail(face, analysis)})
        with self._lock:
            for record, face in zip(records, analysis.faces, strict=True):
                collection.faces[record["Face"]["FaceId"]] = record["Face"]
                collection.descriptors[record["Face"]["FaceId"]] = face.descriptor
        return {
            "FaceRecords": records,
            "FaceModelVersion": MODEL_VERSION,
            "UnindexedFaces": [unindexed_face(face, analysis) for face in analysis.declined],
        }

    def _search_faces_by_image(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        analysis = self._analyze(self._image_bytes(params["Image"], MAX_BYTES), largest_only=True)
        if not analysis.faces:
            raise RekognitionError(
                "InvalidParameterException", "There are no faces in the image. Should be at least 1."
            )
        face = analysis.faces[0]
        with self._lock:
            ids = list(collection.descriptors)
            matrix = np.stack([collection.descriptors[i] for i in ids]) if ids else np.zeros((0, 128))
            stored = [dict(collection.faces[i]) for i in ids]
        threshold = params.get("FaceMatchThreshold", 80.0)
        matches = best_matches(face.descriptor, stored, matrix, threshold, params.get("MaxFaces", 80))
        return {
            "SearchedFaceBoundingBox": bounding_box(face, analysis),
            "SearchedFaceConfidence": face.quality.confidence,
            "FaceMatches": matches,
            "FaceModelVersion": MODEL_VERSION,
        }

    def _detect_faces(self, params: dict) -> dict:
        analysis = self._analyze(self._image_bytes(params["Image"], MAX_BYTES))
        return {"FaceDetails": [face_detail(face, analysis) for face in analysis.faces]}

    def _delete_faces(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        with self._lock:
            # Like Rekognition: a face that belongs to a User is not deleted.
            owned = {
                i: collection.faces[i]["UserId"] for i in params["FaceIds"] if collection.faces.get(i, {}).get("UserId")
            }
            deleted = [i for i in params["FaceIds"] if i not in owned and collection.faces.pop(i, None) is not None]
            for face_id in deleted:
                collection.descriptors.pop(face_id, None)
        # Ids it does not hold are listed as unsuccessful, and an empty
        # DeletedFaces is left out (the model wants at least one).
        missing = [i for i in params["FaceIds"] if i not in deleted and i not in owned]
        reply = {"DeletedFaces": deleted} if deleted else {}
        failures = [{"FaceId": i, "Reasons": ["FACE_NOT_FOUND"]} for i in missing]
        failures += [
            {"FaceId": i, "UserId": u, "Reasons": ["ASSOCIATED_TO_AN_EXISTING_USER"]} for i, u in owned.items()
        ]
        if failures:
            reply["UnsuccessfulFaceDeletions"] = failures
        return reply

    def _list_faces(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        start = int(params.get("NextToken", "0"))
        limit = params.get("MaxResults", 1000)
        with self._lock:
            listed = [
                face
                for face in collection.faces.values()
                if ("UserId" not in params or face.get("UserId") == params["UserId"])
                and ("FaceIds" not in params or face["FaceId"] in params["FaceIds"])
            ]
            faces = [dict(face) for face in itertools.islice(listed, start, start + limit)]
            more = start + limit < len(listed)
        response = {"Faces": faces, "FaceModelVersion": MODEL_VERSION}
        if more:
            response["NextToken"] = str(start + limit)
        return response

    def _list_users(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        start, limit = int(params.get("NextToken", "0")), params.get("MaxResults", 500)
        with self._lock:
            users = sorted(collection.users)
        response = {"Users": [{"UserId": u, "UserStatus": "ACTIVE"} for u in users[start : start + limit]]}
        if start + limit < len(users):
            response["NextToken"] = str(start + limit)
        return response

    def _create_user(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        with self._lock:
            if params["UserId"] in collection.users:
                raise RekognitionError("ConflictException", f"User {params['UserId']} already exists.")
            collection.users[params["UserId"]] = datetime.now(UTC)
        return {}

    def _user(self, collection: _Collection, user_id: str) -> None:
        if user_id not in collection.users:
            raise RekognitionError("ResourceNotFoundException", f"The user id: {user_id} does not exist")

    def _delete_user(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        with self._lock:
            self._user(collection, params["UserId"])
            for face_id in collection.faces_of(params["UserId"]):
                del collection.faces[face_id]["UserId"]
            del collection.users[params["UserId"]]
        return {}

    def _associate_faces(self, params: dict) -> dict:
        """Each face in turn, as the embedded engine does; once the user has
        faces, a face that looks like them less than UserMatchThreshold
        (default 75) is refused."""
        collection = self._collection(params["CollectionId"])
        user_id, threshold = params["UserId"], params.get("UserMatchThreshold", 75.0)
        done, refused = [], []
        with self._lock:
            self._user(collection, user_id)
            for face_id in dict.fromkeys(params["FaceIds"]):
                face, own = collection.faces.get(face_id), collection.faces_of(user_id)
                if face is None:
                    refused.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
                elif face.get("UserId") not in (None, user_id):
                    refused.append(
                        {"FaceId": face_id, "UserId": face["UserId"], "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
                    )
                elif face.get("UserId") == user_id:
                    continue
                elif (
                    own
                    and (
                        score := person_similarity(
                            collection.descriptors[face_id], np.stack([collection.descriptors[i] for i in own])
                        )
                    )
                    < threshold
                ):
                    refused.append(
                        {"FaceId": face_id, "UserId": user_id, "Confidence": score, "Reasons": ["LOW_MATCH_CONFIDENCE"]}
                    )
                elif len(own) >= MAX_FACES_PER_PERSON:
                    raise RekognitionError("ServiceQuotaExceededException", "The user has 100 faces.")
                else:
                    face["UserId"] = user_id
                    done.append({"FaceId": face_id})
            status = "ACTIVE" if collection.faces_of(user_id) else "CREATED"
        return {"AssociatedFaces": done, "UnsuccessfulFaceAssociations": refused, "UserStatus": status}

    def _disassociate_faces(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        user_id = params["UserId"]
        done, refused = [], []
        with self._lock:
            self._user(collection, user_id)
            for face_id in dict.fromkeys(params["FaceIds"]):
                face = collection.faces.get(face_id)
                if face is None:
                    refused.append({"FaceId": face_id, "Reasons": ["FACE_NOT_FOUND"]})
                elif face.get("UserId") not in (None, user_id):
                    refused.append(
                        {"FaceId": face_id, "UserId": face["UserId"], "Reasons": ["ASSOCIATED_TO_A_DIFFERENT_USER"]}
                    )
                elif face.get("UserId") == user_id:
                    del face["UserId"]
                    done.append({"FaceId": face_id})
            status = "ACTIVE" if collection.faces_of(user_id) else "CREATED"
        return {"DisassociatedFaces": done, "UnsuccessfulFaceDisassociations": refused, "UserStatus": status}

    def _search_users_by_image(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        analysis = self._analyze(self._image_bytes(params["Image"], MAX_BYTES))
        if not analysis.faces:
            return {"UserMatches": [], "FaceModelVersion": MODEL_VERSION, "UnsearchedFaces": []}
        largest, *others = analysis.faces
        with self._lock:
            matches = collection.user_matches(
                largest.descriptor, params.get("UserMatchThreshold", 80.0), params.get("MaxUsers", 500)
            )
        return {
            "UserMatches": matches,
            "FaceModelVersion": MODEL_VERSION,
            "SearchedFace": {"FaceDetail": face_detail(largest, analysis)},
            "UnsearchedFaces": [
                {"FaceDetails": face_detail(face, analysis), "Reasons": ["FACE_NOT_LARGEST"]} for face in others
            ],
        }

    def _search_users(self, params: dict) -> dict:
        collection = self._collection(params["CollectionId"])
        face_id = params["FaceId"]
        with self._lock:
            if face_id not in collection.descriptors:
                raise RekognitionError("InvalidParameterException", f"Face {face_id} does not exist.")
            matches = collection.user_matches(
                collection.descriptors[face_id], params.get("UserMatchThreshold", 80.0), params.get("MaxUsers", 500)
            )
        return {"UserMatches": matches, "FaceModelVersion": MODEL_VERSION, "SearchedFace": {"FaceId": face_id}}

    def _search_faces(self, params: dict) -> dict:
        """The stored face's matches, never itself."""
        collection = self._collection(params["CollectionId"])
        face_id = params["FaceId"]
        with self._lock:
            if face_id not in collection.descriptors:
                raise RekognitionError("InvalidParameterException", f"Face {face_id} does not exist.")
            ids = [i for i in collection.descriptors if i != face_id]
            matrix = np.stack([collection.descriptors[i] for i in ids]) if ids else np.zeros((0, 128))
            stored = [dict(collection.faces[i]) for i in ids]
            query = collection.descriptors[face_id]
        matches = best_matches(
            query, stored, matrix, params.get("FaceMatchThreshold", 80.0), params.get("MaxFaces", 80)
        )
        return {"SearchedFaceId": face_id, "FaceMatches": matches, "FaceModelVersion": MODEL_VERSION}

    def _compare_faces(self, params: dict) -> dict:
        source = self._analyze(self._image_bytes(params["SourceImage"], MAX_BYTES), largest_only=True)
        target = self._analyze(self._image_bytes(params["TargetImage"], MAX_BYTES))
        if not source.faces or not target.faces:
            raise RekognitionError("InvalidParameterException", "Request has invalid parameters")
        return compare(source, target, params.get("SimilarityThreshold", 80.0))

    def _image_bytes(self, image: dict, limit: int) -> bytes:
        if "S3Object" in image:
            location = image["S3Object"]
            try:
                version = {"VersionId": location["Version"]} if "Version" in location else {}
                data = self._s3.get_object(Bucket=location["Bucket"], Key=location["Name"], **version)["Body"].read()
            except ClientError as e:
                raise RekognitionError("InvalidS3ObjectException", "Unable to get object metadata from S3.") from e
        else:
            data = image["Bytes"]
        if len(data) > limit:
            raise RekognitionError("ImageTooLargeException", f"Image size is too large: {len(data)} bytes.")
        return data

    def _analyze(self, data: bytes, **options) -> Analysis:
        if not data.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
            raise RekognitionError("InvalidImageFormatException", "Request has invalid image format")
        try:
            return self._analyzer.analyze(data, **options)
        except ImageRejected as e:
            raise RekognitionError("InvalidImageFormatException", "Request has invalid image format") from e


# The AWS stage under test.

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


# The tests' pace: each IndexFaces 2 ms apart (the pace itself is tested on a
# virtual clock, tests/unit/test_index_queue.py, and at volume by the simulation).
TEST_PACE = {
    "FACEPRINT_INDEX_TPS": "1000",
    "FACEPRINT_INDEX_WORKERS": "2",
    "FACEPRINT_SEARCH_TPS": "1000",
    "FACEPRINT_DELETE_TPS": "1000",
}


@dataclass
class AwsStage:
    """The resources of one Chalice stage, in moto and the fake."""

    stage: str
    env: dict[str, str]
    s3: object
    dynamodb: object
    rekognition: FakeRekognition
    events: S3Events
    sqs: object = None
    cloudwatch: object = None
    apigateway: object = None

    @property
    def bucket(self) -> str:
        return self.env["FACEPRINT_BUCKET"]


@cache
def load_setup_script():
    """chalicelib/ops/aws_setup.py, loaded afresh as its own module (tests patch it freely)."""
    spec = importlib.util.spec_from_file_location("aws_setup", REPO / "chalicelib" / "ops" / "aws_setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WorkerClient(TestLambdaClient):
    """Invokes a function as Lambda does, with the time its configured
    timeout gives it (chalice.test's context says 3 s, whatever the timeout)."""

    def invoke(self, function_name: str, payload=None):
        scoped = self._config.scope(self._config.chalice_stage, function_name)
        context = LambdaContext(
            function_name, memory_size=scoped.lambda_memory_size, max_runtime_ms=scoped.lambda_timeout * 1000
        )
        with self._patched_env_vars(scoped.environment_variables):
            return self._app.handler_map[function_name](payload or {}, context)


@contextmanager
def aws_stage(monkeypatch, stage: str = "dev") -> Iterator[AwsStage]:
    """Moto S3, DynamoDB, SQS, CloudWatch and API Gateway plus a
    FakeRekognition, with the resources that `make aws-setup STAGE=<stage>`
    creates (by the same script), and the app's clients pointed at them.
    Requests through chalice.test.Client(app, stage_name=stage) then run
    the AWS wiring; `events.deliver()` runs its indexing workers."""
    setup = load_setup_script()
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    env = {**setup.stage_environment(stage), **TEST_PACE}
    configured = Config.environment_variables.fget
    monkeypatch.setattr(Config, "environment_variables", property(lambda c: {**configured(c), **TEST_PACE}))
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION, config=aws.config_for("s3"))
        dynamodb = boto3.client("dynamodb", region_name=REGION, config=aws.config_for("dynamodb"))
        sqs = boto3.client("sqs", region_name=REGION, config=aws.config_for("sqs"))
        cloudwatch = boto3.client("cloudwatch", region_name=REGION)
        apigateway = boto3.client("apigateway", region_name=REGION)
        logs = boto3.client("logs", region_name=REGION)
        rekognition = FakeRekognition(s3)
        clients = {"s3": s3, "dynamodb": dynamodb, "rekognition": rekognition, "sqs": sqs, "logs": logs}
        monkeypatch.setattr(aws, "client", lambda service, region=None, paced=False: clients[service])
        # The pacing's retries and the workers' pauses after a throttle, without waiting: the fake
        # Rekognition fails at once, and a test's turns are a millisecond apart (TEST_PACE).
        monkeypatch.setattr(pacing, "BACKOFF_SECONDS", 0.0)
        monkeypatch.setattr(index_queue, "THROTTLE_PAUSE_SECONDS", (0.0, 0.0))
        settings = setup.stage_settings(env)
        setup.create_stage(
            settings,
            s3,
            dynamodb,
            rekognition,
            log=lambda _: None,
            sqs=sqs,
            cloudwatch=cloudwatch,
            apigateway=apigateway,
            logs=logs,
        )
        # S3Events plays the bucket's notifications, with what moto's lack.
        s3.put_bucket_notification_configuration(Bucket=settings.bucket, NotificationConfiguration={})
        queue_url = sqs.get_queue_url(QueueName=settings.index_queue)["QueueUrl"]
        events = S3Events(
            settings.bucket, sqs, queue_url, sqs.get_queue_url(QueueName=setup.dead_letter_queue(settings))["QueueUrl"]
        )
        events.watch(s3)
        with Client(app, stage_name=stage) as handlers:
            worker = WorkerClient(app, handlers.lambda_._config)
            events.invoke = lambda event: worker.invoke("index_queued_photos", event)
            wiring.reset()
            events.drain()  # S3's test event, sent when the notification was set: nothing to do
            try:
                yield AwsStage(stage, env, s3, dynamodb, rekognition, events, sqs, cloudwatch, apigateway)
            finally:
                wiring.reset()
