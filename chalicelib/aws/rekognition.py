"""The AWS engine: an Amazon Rekognition face collection.

Photos are indexed from S3 (IndexFaces reads the object itself, up to
15 MB); searches send the bytes, which Rekognition caps at 5 MB, so larger
queries are scaled down and re-encoded with Pillow first.

API calls per query photo: `search_faces_by_image` makes 1
(SearchFacesByImage on the largest face); `search_all_faces_by_image` makes
1 + N (one DetectFaces, then one SearchFacesByImage per face found, on a
crop around that face, since SearchFacesByImage only ever searches the
largest face of its image).

RekognitionPeople is the Users API on the same collection (a person is a
User, UserId = personId) plus SearchFaces and CompareFaces: one call per
use (docs/api.md, "People", lists them per route).

Naming (core/naming.py) needs the collection's face count: DescribeCollection's
FaceCount, asked at most once a FACE_COUNT_SECONDS per process (a warm Lambda
container), so a search costs no extra call but the first of each minute.
Rekognition publishes no distribution of its similarities between strangers;
STRANGERS is an assumption from AWS's guidance, which the stage can replace
(FACEPRINT_STRANGER_SIMILARITY): that 80, its default threshold, suits "a
personal photo collection application, where a few incorrect matches can be
tolerated", taken as an archive of 1,000 faces, and 99, its recommendation
"where highly accurate face similarity matches are important", an archive
of 10 million. A normal distribution of mean 33 and sd 11 gives exactly
those two thresholds; its spread around one query is taken as the sd, so a
name needs a lead of 9.4 over the runner-up at a million faces:
docs/deploy.md "Names on a large collection"."""

import io
import threading
import time

from botocore.exceptions import ClientError
from PIL import Image

from chalicelib.aws import clients as aws
from chalicelib.core.errors import (
    COLLECTION_FULL,
    BadRequest,
    CollectionFull,
    FaceprintError,
    NotFound,
    ServiceUnavailable,
)
from chalicelib.core.limits import (
    AWS_MAX_UPLOAD_BYTES,
    MAX_FACES_PER_ASSOCIATION,
    MAX_FACES_PER_PERSON,
    MAX_MATCHES,
    MAX_SEARCHED_FACES,
)
from chalicelib.core.naming import StrangerModel
from chalicelib.core.pixels import decode_rgb
from chalicelib.core.ports import FaceEngine, Page, PeopleEngine, PhotoVersion

MAX_SEARCH_BYTES = 5 * 1024 * 1024  # Rekognition's limit for Image.Bytes
MAX_DELETE_IDS = 4096  # DeleteFaces' FaceIds limit
MAX_LIST_RESULTS = 4096  # ListFaces' MaxResults limit
MAX_LIST_USERS = 500  # ListUsers' MaxResults limit
# A suggestion's SearchFaces asks for at most this many similar faces.
SUGGESTION_NEIGHBOURS = min(1000, MAX_MATCHES)
# Decoding and re-encoding: the longest side we ever send, the JPEG quality,
# and how much each further attempt shrinks the image to fit 5 MB.
_MAX_PIXELS = 16_000_000  # decoded at most, before fitting Rekognition's 5 MB
_JPEG_QUALITY = 90
_SHRINK = 0.75
# A face crop keeps this share of the face's size as margin on every side,
# and is at least Rekognition's minimum image side.
_CROP_MARGIN = 0.4
_MIN_CROP_SIDE = 240  # small faces are upscaled: Rekognition misses faces under ~40 px
FACE_COUNT_SECONDS = 60.0

STRANGERS = StrangerModel(
    33.0, 11.0, "Rekognition, assumed from AWS's guidance (80 for 1,000 faces, 99 for 10 million)"
)


class RekognitionEngine(FaceEngine):
    def __init__(
        self,
        client,
        collection_id: str,
        bucket: str,
        quality_filter: str = "AUTO",
        max_faces: int = 100,
        stage: str = "",
        s3=None,
        strangers: StrangerModel | None = None,
        clock=time.monotonic,
        paced_client=None,
        search_call=None,
        max_collection_faces: int | None = None,
    ) -> None:
        self._client = client
        # IndexFaces, DeleteFaces and SearchFacesByImage go through a client
        # that makes one attempt a call: the stage's pacing retries them,
        # each attempt on its turn (core/pacing.py). Searches take their
        # turns here, one each (`search_call`: the stage's search budget).
        self._paced = paced_client or client
        self._search_call = search_call or (lambda call: call())
        self._max_faces_held = max_collection_faces  # Rekognition's quota of faces a collection
        self._s3 = s3
        self._collection = collection_id
        self._bucket = bucket
        self._quality_filter = quality_filter
        self._max_faces = max_faces
        self._stage = stage
        self._strangers = strangers or STRANGERS
        self._clock = clock
        self._model: str | None = None
        self._face_count: tuple[float, int] | None = None  # (when asked, FaceCount)
        self._count_lock = threading.Lock()
        self._resource = f"Rekognition collection {collection_id!r} (photos in S3 bucket {bucket!r})"

    def index_faces(self, photo: PhotoVersion, external_image_id: str) -> dict:
        """IndexFaces on that very version of the S3 object (with bucket
        versioning: a late event never indexes newer bytes). Rekognition
        says InvalidS3ObjectException alike for a version that is gone and
        for an object it cannot read: S3 tells which (NotFound for the first,
        as the port promises)."""
        location = {"Bucket": self._bucket, "Name": photo.key}
        if photo.version_id:
            location["Version"] = photo.version_id
        with aws.translated(self._resource, self._stage):
            try:
                response = self._paced.index_faces(
                    CollectionId=self._collection,
                    Image={"S3Object": location},
                    ExternalImageId=external_image_id,
                    MaxFaces=self._max_faces,
                    QualityFilter=self._quality_filter,
                    DetectionAttributes=["DEFAULT"],
                )
            except ClientError as e:
                if aws.error_code(e) == "InvalidS3ObjectException" and self._version_gone(photo):
                    raise NotFound(f"Version {photo.version_id} of {photo.key!r} is no longer stored.") from e
                if (
                    aws.error_code(e) == "ServiceQuotaExceededException"
                ):  # "the size of the collection exceeds the allowed limit"
                    limit = f"Rekognition's quota for collection {self._collection!r}"
                    raise CollectionFull(COLLECTION_FULL.format(limit=limit)) from e
                raise
        return {
            "FaceRecords": response.get("FaceRecords", []),
            "FaceModelVersion": response.get("FaceModelVersion", ""),
            "UnindexedFaces": response.get("UnindexedFaces", []),
        }

    def search_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> dict:
        return self._search(fit_for_rekognition(data), threshold, max_faces)

    def search_all_faces_by_image(self, data: bytes, threshold: float, max_faces: int) -> list[dict]:
        with aws.translated(self._resource, self._stage):
            detected = self._client.detect_faces(Image={"Bytes": fit_for_rekognition(data)}, Attributes=["DEFAULT"])
        details = sorted(detected.get("FaceDetails", []), key=_area, reverse=True)[:MAX_SEARCHED_FACES]
        if not details:
            return []
        image = decode_rgb(data, _MAX_PIXELS)
        results = []
        for detail in details:
            found = self._search(_crop(image, detail["BoundingBox"]), threshold, max_faces)
            # The crop's coordinates mean nothing to the caller: report the
            # face where DetectFaces found it in the whole photo.
            found["SearchedFaceBoundingBox"] = detail["BoundingBox"]
            found["SearchedFaceConfidence"] = detail.get("Confidence", found.get("SearchedFaceConfidence", 0.0))
            results.append(found)
        return results

    def delete_faces(self, face_ids: list[str]) -> None:
        """DeleteFaces refuses a face that belongs to a User
        (ASSOCIATED_TO_AN_EXISTING_USER): such faces are disassociated
        first (one DisassociateFaces per User), then deleted."""
        with aws.translated(self._resource, self._stage):
            for start in range(0, len(face_ids), MAX_DELETE_IDS):
                chunk = face_ids[start : start + MAX_DELETE_IDS]
                response = self._paced.delete_faces(CollectionId=self._collection, FaceIds=chunk)
                owned = [
                    failure
                    for failure in response.get("UnsuccessfulFaceDeletions", [])
                    if "ASSOCIATED_TO_AN_EXISTING_USER" in failure.get("Reasons", [])
                ]
                if owned:
                    self._disown(owned)
                    self._client.delete_faces(CollectionId=self._collection, FaceIds=[f["FaceId"] for f in owned])

    def _disown(self, owned: list[dict]) -> None:
        """Disassociate these faces from their Users (named by DeleteFaces'
        reply, or else by ListFaces)."""
        users: dict[str, list[str]] = {}
        unnamed = [failure["FaceId"] for failure in owned if not failure.get("UserId")]
        for start in range(0, len(unnamed), MAX_LIST_RESULTS):
            chunk = unnamed[start : start + MAX_LIST_RESULTS]
            listed = self._client.list_faces(CollectionId=self._collection, FaceIds=chunk)
            for face in listed.get("Faces", []):
                if face.get("UserId"):
                    users.setdefault(face["UserId"], []).append(face["FaceId"])
        for failure in owned:
            if failure.get("UserId"):
                users.setdefault(failure["UserId"], []).append(failure["FaceId"])
        for user_id, ids in users.items():
            for start in range(0, len(ids), MAX_FACES_PER_ASSOCIATION):
                chunk = ids[start : start + MAX_FACES_PER_ASSOCIATION]
                self._client.disassociate_faces(CollectionId=self._collection, UserId=user_id, FaceIds=chunk)

    def _version_gone(self, photo: PhotoVersion) -> bool:
        if self._s3 is None:
            return False
        version = {"VersionId": photo.version_id} if photo.version_id else {}
        try:
            self._s3.head_object(Bucket=self._bucket, Key=photo.key, **version)
        except ClientError as e:
            if aws.error_code(e) in ("404", "NoSuchKey", "NoSuchVersion", "NotFound", "400"):
                return True
            raise
        return False

    def get_faces(self, face_ids: list[str]) -> dict[str, dict]:
        """ListFaces filtered by FaceIds, 4,096 at a time."""
        found: dict[str, dict] = {}
        with aws.translated(self._resource, self._stage):
            for start in range(0, len(face_ids), MAX_LIST_RESULTS):
                chunk = face_ids[start : start + MAX_LIST_RESULTS]
                request = {"CollectionId": self._collection, "FaceIds": chunk, "MaxResults": MAX_LIST_RESULTS}
                while True:
                    response = self._client.list_faces(**request)
                    found.update({face["FaceId"]: face for face in response.get("Faces", [])})
                    if not response.get("NextToken"):
                        break
                    request["NextToken"] = response["NextToken"]
        return found

    def list_faces(self, limit: int, token: str | None = None) -> Page:
        request = {"CollectionId": self._collection, "MaxResults": max(1, min(limit, MAX_LIST_RESULTS))}
        if token:
            request["NextToken"] = token
        with aws.translated(self._resource, self._stage):
            response = self._client.list_faces(**request)
        return Page(response.get("Faces", []), response.get("NextToken"))

    def list_face_ids(self, limit: int, token: str | None = None) -> Page:
        page = self.list_faces(limit, token)
        return Page([face["FaceId"] for face in page.items], page.next)

    def describe(self) -> dict:
        with aws.translated(self._resource, self._stage):
            response = self._client.describe_collection(CollectionId=self._collection)
        self._model = response.get("FaceModelVersion", "")
        with self._count_lock:
            self._face_count = (self._clock(), response["FaceCount"])
        return {
            "engine": "rekognition",
            "model": self._model,
            "faces": response["FaceCount"],
            "limits": {"maxUploadBytesThroughApi": AWS_MAX_UPLOAD_BYTES},
        }

    def face_count(self) -> int:
        """DescribeCollection's FaceCount, asked again once it is
        FACE_COUNT_SECONDS old."""
        with self._count_lock:
            known = self._face_count
        if known is not None and self._clock() - known[0] < FACE_COUNT_SECONDS:
            return known[1]
        return self.describe()["faces"]

    def stranger_model(self) -> StrangerModel:
        return self._strangers

    def probe(self, key: str) -> bool | None:
        """DetectFaces on a stored photo: whether Rekognition works now (the
        circuit breaker's probe; read-only, billed as one image)."""
        try:
            with aws.translated(self._resource, self._stage):
                self._client.detect_faces(
                    Image={"S3Object": {"Bucket": self._bucket, "Name": key}}, Attributes=["DEFAULT"]
                )
        except ServiceUnavailable:
            return False
        except (FaceprintError, ClientError):
            return None  # the photo is gone, say: no answer
        return True

    def room_left(self) -> int | None:
        """The collection's quota (FACEPRINT_COLLECTION_FACES) less its
        FaceCount (a minute old at most)."""
        if self._max_faces_held is None:
            return None
        return self._max_faces_held - self.face_count()

    def _search(self, data: bytes, threshold: float, max_faces: int) -> dict:
        """One SearchFacesByImage on the stage's search budget (TooManyRequests
        when it has no turn soon)."""
        return self._search_call(lambda: self._search_once(data, threshold, max_faces))

    def _search_once(self, data: bytes, threshold: float, max_faces: int) -> dict:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._paced.search_faces_by_image(
                    CollectionId=self._collection,
                    Image={"Bytes": data},
                    FaceMatchThreshold=threshold,
                    MaxFaces=max_faces,
                )
            except ClientError as e:
                # The photo is valid (prepare_search checked it), so this code
                # is Rekognition's "there are no faces in the image": the same
                # empty result as offline.
                if aws.error_code(e) != "InvalidParameterException":
                    raise
                return {"FaceMatches": [], "FaceModelVersion": self._model_version()}
        result = {
            "FaceMatches": response.get("FaceMatches", []),
            "FaceModelVersion": response.get("FaceModelVersion", ""),
        }
        for name in ("SearchedFaceBoundingBox", "SearchedFaceConfidence"):
            if name in response:
                result[name] = response[name]
        return result

    def _model_version(self) -> str:
        """A collection keeps the model it was created with: ask once."""
        if self._model is None:
            self._model = self.describe()["model"]
        return self._model


class RekognitionPeople(PeopleEngine):
    """People as Rekognition Users of the collection."""

    def __init__(self, client, collection_id: str, stage: str = "") -> None:
        self._client = client
        self._collection = collection_id
        self._stage = stage
        self._resource = f"Rekognition collection {collection_id!r}"

    def create_user(self, user_id: str) -> None:
        with aws.translated(self._resource, self._stage):
            try:
                self._client.create_user(CollectionId=self._collection, UserId=user_id)
            except ClientError as e:
                if aws.error_code(e) != "ConflictException":
                    raise

    def delete_user(self, user_id: str) -> None:
        with aws.translated(self._resource, self._stage):
            try:
                self._client.delete_user(CollectionId=self._collection, UserId=user_id)
            except ClientError as e:
                if not self._gone(e):
                    raise

    def associate_faces(self, user_id: str, face_ids: list[str], threshold: float) -> dict:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.associate_faces(
                    CollectionId=self._collection, UserId=user_id, FaceIds=face_ids, UserMatchThreshold=threshold
                )
            except ClientError as e:
                if aws.error_code(e) == "ServiceQuotaExceededException":
                    raise BadRequest(
                        f"Person {user_id!r} has {MAX_FACES_PER_PERSON} faces, the most one can have."
                    ) from e
                if self._gone(e):
                    raise NotFound(f"No person {user_id!r} in the collection.") from e
                raise
        return {
            "AssociatedFaces": response.get("AssociatedFaces", []),
            "UnsuccessfulFaceAssociations": response.get("UnsuccessfulFaceAssociations", []),
            "UserStatus": response.get("UserStatus", "ACTIVE"),
        }

    def disassociate_faces(self, user_id: str, face_ids: list[str]) -> dict:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.disassociate_faces(
                    CollectionId=self._collection, UserId=user_id, FaceIds=face_ids
                )
            except ClientError as e:
                if self._gone(e):
                    raise NotFound(f"No person {user_id!r} in the collection.") from e
                raise
        return {
            "DisassociatedFaces": response.get("DisassociatedFaces", []),
            "UnsuccessfulFaceDisassociations": response.get("UnsuccessfulFaceDisassociations", []),
            "UserStatus": response.get("UserStatus", "ACTIVE"),
        }

    def search_users_by_image(self, data: bytes, threshold: float, max_users: int) -> dict:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.search_users_by_image(
                    CollectionId=self._collection,
                    Image={"Bytes": fit_for_rekognition(data)},
                    UserMatchThreshold=threshold,
                    MaxUsers=max_users,
                )
            except ClientError as e:
                # The photo is valid (prepare_search checked it): no face in it.
                if aws.error_code(e) != "InvalidParameterException":
                    raise
                response = {}
        result = {
            "UserMatches": response.get("UserMatches", []),
            "FaceModelVersion": response.get("FaceModelVersion", ""),
            "UnsearchedFaces": response.get("UnsearchedFaces", []),
        }
        if "SearchedFace" in response:
            result["SearchedFace"] = response["SearchedFace"]
        return result

    def search_users(self, face_id: str, threshold: float, max_users: int) -> dict:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.search_users(
                    CollectionId=self._collection, FaceId=face_id, UserMatchThreshold=threshold, MaxUsers=max_users
                )
            except ClientError as e:
                if self._gone(e):
                    raise NotFound(f"No face {face_id!r} in the collection.") from e
                raise
        return {
            "UserMatches": response.get("UserMatches", []),
            "FaceModelVersion": response.get("FaceModelVersion", ""),
            "SearchedFace": response.get("SearchedFace", {"FaceId": face_id}),
        }

    def search_faces(self, face_id: str, threshold: float, max_faces: int) -> dict:
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.search_faces(
                    CollectionId=self._collection, FaceId=face_id, FaceMatchThreshold=threshold, MaxFaces=max_faces
                )
            except ClientError as e:
                if self._gone(e):
                    raise NotFound(f"No face {face_id!r} in the collection.") from e
                raise
        return {
            "SearchedFaceId": response.get("SearchedFaceId", face_id),
            "FaceMatches": [m for m in response.get("FaceMatches", []) if m["Face"]["FaceId"] != face_id],
            "FaceModelVersion": response.get("FaceModelVersion", ""),
        }

    def compare_faces(self, source: bytes, target: bytes, threshold: float) -> dict:
        """CompareFaces answers InvalidParameterException when either photo
        has no face: then one DetectFaces on the source says which."""
        source = fit_for_rekognition(source)
        with aws.translated(self._resource, self._stage):
            try:
                response = self._client.compare_faces(
                    SourceImage={"Bytes": source},
                    TargetImage={"Bytes": fit_for_rekognition(target)},
                    SimilarityThreshold=threshold,
                )
            except ClientError as e:
                if aws.error_code(e) != "InvalidParameterException":
                    raise
                detected = self._client.detect_faces(Image={"Bytes": source}, Attributes=["DEFAULT"])
                faces = sorted(detected.get("FaceDetails", []), key=_area, reverse=True)
                if not faces:
                    return {"FaceMatches": [], "UnmatchedFaces": []}
                largest = {"BoundingBox": faces[0]["BoundingBox"], "Confidence": faces[0].get("Confidence", 0.0)}
                return {"SourceImageFace": largest, "FaceMatches": [], "UnmatchedFaces": []}
        return {
            "SourceImageFace": response["SourceImageFace"],
            "FaceMatches": response.get("FaceMatches", []),
            "UnmatchedFaces": response.get("UnmatchedFaces", []),
        }

    def owners(self, face_ids: list[str]) -> dict[str, str | None]:
        """ListFaces filtered by FaceIds: each Face says its UserId."""
        engine = RekognitionEngine(self._client, self._collection, "", stage=self._stage)
        return {face_id: face.get("UserId") for face_id, face in engine.get_faces(face_ids).items()}

    def faces_of_user(self, user_id: str) -> list[str]:
        request = {"CollectionId": self._collection, "UserId": user_id, "MaxResults": MAX_LIST_RESULTS}
        ids: list[str] = []
        with aws.translated(self._resource, self._stage):
            while True:
                try:
                    response = self._client.list_faces(**request)
                except ClientError as e:
                    if self._gone(e):
                        return []
                    raise
                ids += [face["FaceId"] for face in response.get("Faces", [])]
                if not response.get("NextToken"):
                    return sorted(ids)
                request["NextToken"] = response["NextToken"]

    def list_users(self) -> list[str]:
        request = {"CollectionId": self._collection, "MaxResults": MAX_LIST_USERS}
        users: list[str] = []
        with aws.translated(self._resource, self._stage):
            while True:
                response = self._client.list_users(**request)
                users += [user["UserId"] for user in response.get("Users", [])]
                if not response.get("NextToken"):
                    return sorted(users)
                request["NextToken"] = response["NextToken"]

    def similar_faces(self, face_ids: list[str], threshold: float) -> dict[str, dict[str, float]]:
        """One SearchFaces per face (its most similar SUGGESTION_NEIGHBOURS)."""
        wanted = set(face_ids)
        graph: dict[str, dict[str, float]] = {}
        for face_id in dict.fromkeys(face_ids):
            try:
                found = self.search_faces(face_id, threshold, SUGGESTION_NEIGHBOURS)
            except NotFound:
                continue  # deleted meanwhile
            graph[face_id] = {
                m["Face"]["FaceId"]: m["Similarity"] for m in found["FaceMatches"] if m["Face"]["FaceId"] in wanted
            }
        return graph

    def _gone(self, error: ClientError) -> bool:
        """Whether Rekognition says the user or face is not there (and not
        the collection itself, which is then a configuration error)."""
        if aws.error_code(error) not in ("ResourceNotFoundException", "InvalidParameterException"):
            return False
        self._client.describe_collection(CollectionId=self._collection)  # raises when the collection is missing
        return True


def fit_for_rekognition(data: bytes, limit: int = MAX_SEARCH_BYTES) -> bytes:
    """The photo itself when it fits Rekognition's byte limit, else a JPEG
    of it (upright, RGB) scaled down until it does."""
    if len(data) <= limit:
        return data
    image = decode_rgb(data, _MAX_PIXELS)
    while True:
        encoded = _jpeg(image)
        if len(encoded) <= limit or max(image.size) <= _MIN_CROP_SIDE:
            return encoded
        size = (max(1, int(image.width * _SHRINK)), max(1, int(image.height * _SHRINK)))
        image = image.resize(size, Image.Resampling.LANCZOS)


def _area(detail: dict) -> float:
    box = detail["BoundingBox"]
    return box.get("Width", 0.0) * box.get("Height", 0.0)


def _crop(image: Image.Image, box: dict) -> bytes:
    """The face in `box` (ratios of the upright photo) with a margin around
    it, as a JPEG at least _MIN_CROP_SIDE pixels on each side."""
    width, height = box["Width"] * image.width, box["Height"] * image.height
    left, top = box["Left"] * image.width, box["Top"] * image.height
    margin_x, margin_y = width * _CROP_MARGIN, height * _CROP_MARGIN
    area = (
        max(0, int(left - margin_x)),
        max(0, int(top - margin_y)),
        min(image.width, int(left + width + margin_x) + 1),
        min(image.height, int(top + height + margin_y) + 1),
    )
    crop = image.crop(area)
    if min(crop.size) < _MIN_CROP_SIDE:
        scale = _MIN_CROP_SIDE / min(crop.size)
        crop = crop.resize((round(crop.width * scale), round(crop.height * scale)), Image.Resampling.BICUBIC)
    return fit_for_rekognition(_jpeg(crop))


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=_JPEG_QUALITY)
    return out.getvalue()
