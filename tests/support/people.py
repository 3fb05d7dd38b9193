"""Requests about people that the tests make through chalice.test.Client."""

import base64
import json


def put_person(client, person_id: str, name: str):
    return client.http.put(
        f"/people/{person_id}", body=json.dumps({"name": name}), headers={"Content-Type": "application/json"}
    )


def associate(client, person_id: str, face_ids: list[str], **fields):
    return client.http.post(
        f"/people/{person_id}/faces",
        body=json.dumps({"faceIds": face_ids, **fields}),
        headers={"Content-Type": "application/json"},
    )


def search_people(client, data: bytes, query: str = ""):
    return client.http.post(f"/search/people{query}", body=data, headers={"Content-Type": "image/jpeg"})


def compare(client, source: bytes | None, target: bytes | None, **fields):
    body = {**fields}
    if source is not None:
        body["source"] = base64.b64encode(source).decode()
    if target is not None:
        body["target"] = base64.b64encode(target).decode()
    return client.http.post("/compare", body=json.dumps(body), headers={"Content-Type": "application/json"})


def face_ids(client, key: str) -> list[str]:
    """The FaceIds of an indexed image, largest face first."""
    faces = client.http.get(f"/images/{key}").json_body["faces"]
    faces.sort(key=lambda face: face["BoundingBox"]["Width"] * face["BoundingBox"]["Height"], reverse=True)
    return [face["FaceId"] for face in faces]
