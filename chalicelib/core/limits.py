"""Every limit and default of the API, in one place (GET /info lists them)."""

import re

MAX_IMAGE_BYTES = 15 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
# What a photo may take once decoded: width x height x channels x bytes per
# channel, a 50 MP RGB photo (fewer pixels with alpha or 16-bit samples).
MAX_DECODED_BYTES = 150_000_000
MAX_JPEG_SCANS = 100  # a progressive JPEG has about 10
# The largest request body the local server reads (/compare's two photos as
# base64 in JSON); a larger one is refused from its Content-Length, unread.
# (On AWS, API Gateway takes at most 10 MB.)
MAX_REQUEST_BYTES = 2 * (MAX_IMAGE_BYTES * 4 // 3) + 1024 * 1024
# On AWS a request body reaches Lambda base64-encoded, within its 6 MB payload
# limit: larger photos go straight into the bucket (up to MAX_IMAGE_BYTES).
AWS_MAX_UPLOAD_BYTES = 4_400_000
MAX_KEY_BYTES = 255  # for a new photo through the API
MAX_STORED_KEY_BYTES = 1024  # S3's limit: photos copied into the bucket may have such keys
# S3 allows 2 KB of user metadata in all; the API keeps RESERVED_METADATA_BYTES
# of it for its own: a converted photo's original type, under RESERVED_METADATA.
RESERVED_METADATA = "faceprint-original-type"
RESERVED_METADATA_BYTES = 40
MAX_METADATA_BYTES = 2 * 1024 - RESERVED_METADATA_BYTES
DEFAULT_THRESHOLD = 80.0  # the lowest default threshold (dlib's and Rekognition's own): core/naming.py raises it
DEFAULT_MAX_MATCHES = 10
MAX_MATCHES = 4096
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000
# A search with faces=all searches at most this many faces, the largest
# (on AWS each is a SearchFacesByImage call, against a quota of 5 to 50 a second).
MAX_SEARCHED_FACES = 20
MAX_FACES = 100  # indexed per photo at most (Rekognition's MaxFaces ceiling): FACEPRINT_MAX_FACES's default and top
TIME_LIMIT_SECONDS = 30.0  # to decode, detect and describe one photo offline
# The photos the API takes. JPEG and PNG are stored as sent; the others are
# converted to JPEG on upload (and for a search), so the engines and the
# stored archive only ever hold JPEG and PNG.
STORED_TYPES = ("image/jpeg", "image/png")
CONVERTED_TYPES = ("image/heic", "image/heif", "image/webp", "image/avif")
ACCEPTED_TYPES = STORED_TYPES + CONVERTED_TYPES

# Rekognition's rule for ExternalImageId.
EXTERNAL_IMAGE_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,255}")

# People (a person is a Rekognition User): Rekognition's UserId rule and limits.
PERSON_ID = re.compile(r"[a-zA-Z0-9_.\-:]{1,128}")
MAX_PERSON_NAME_CHARS = 256
MAX_FACES_PER_PERSON = 100  # a User holds at most 100 faces
MAX_FACES_PER_ASSOCIATION = 100  # AssociateFaces' FaceIds, 1 to 100
DEFAULT_ASSOCIATE_THRESHOLD = 75.0  # AssociateFaces' UserMatchThreshold default
MAX_PEOPLE_MATCHES = 500  # SearchUsersByImage's MaxUsers ceiling
DEFAULT_MIN_FACES = 2  # a suggested person has at least this many faces
# Faces that belong to no person one POST /people/suggestions groups, at most
# (offline every pair of them is compared; on AWS each costs a SearchFaces).
MAX_SUGGESTION_FACES = 5000


# An erasure through the API works at most this long per request (API
# Gateway gives up at 29 s), then replies 202: the same request carries on.
ERASURE_SECONDS_PER_REQUEST = 20


def as_dict() -> dict:
    return {
        "maxImageBytes": MAX_IMAGE_BYTES,
        "maxImagePixels": MAX_IMAGE_PIXELS,
        "maxDecodedBytes": MAX_DECODED_BYTES,
        "maxJpegScans": MAX_JPEG_SCANS,
        "maxRequestBytes": MAX_REQUEST_BYTES,
        "maxKeyBytes": MAX_KEY_BYTES,
        "maxMetadataBytes": MAX_METADATA_BYTES,
        "defaultThreshold": DEFAULT_THRESHOLD,
        "defaultMaxMatches": DEFAULT_MAX_MATCHES,
        "maxMatches": MAX_MATCHES,
        "maxPageSize": MAX_PAGE_SIZE,
        "maxFacesPerImage": MAX_FACES,
        "maxSearchedFaces": MAX_SEARCHED_FACES,
        "analysisTimeLimitSeconds": TIME_LIMIT_SECONDS,
        "acceptedTypes": list(ACCEPTED_TYPES),
        "maxFacesPerPerson": MAX_FACES_PER_PERSON,
        "defaultAssociateThreshold": DEFAULT_ASSOCIATE_THRESHOLD,
        "maxPeopleMatches": MAX_PEOPLE_MATCHES,
        "maxSuggestionFaces": MAX_SUGGESTION_FACES,
    }
