"""Image and face records as the use cases write them, for the store tests."""


def image(key: str, etag: str = "e1", status: str = "indexed", count: int = 0, **extra) -> dict:
    return {
        "key": key,
        "status": status,
        "metadata": {"name": "Keanu"},
        "contentType": "image/jpeg",
        "size": 1234,
        "etag": etag,
        "faceCount": count,
        "updatedAt": "2026-01-01T00:00:00.000+00:00",
        **extra,
    }


def face(face_id: str, key: str, left: float = 0.25) -> dict:
    return {
        "FaceId": face_id,
        "BoundingBox": {"Width": 0.5, "Height": 0.375, "Left": left, "Top": 0.1},
        "ImageId": "img-1",
        "ExternalImageId": key,
        "Confidence": 99.87654321,
        "IndexFacesModelVersion": "7.0",
        "imageKey": key,
    }
