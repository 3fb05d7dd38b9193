"""Requests the tests make through chalice.test.Client."""


def put_photo(client, key: str, data: bytes, content_type: str = "image/jpeg", **headers):
    return client.http.put(f"/index/{key}", body=data, headers={"Content-Type": content_type, **headers})


def search_photo(client, data: bytes, query: str = "", content_type: str = "image/jpeg"):
    return client.http.post(f"/search{query}", body=data, headers={"Content-Type": content_type})


def indexed(client, key: str, data: bytes, content_type: str = "image/jpeg", **headers) -> dict:
    """PUT a photo and read it back once indexed ({"image", "faces"}). On the
    AWS wiring the reply says `pending`; the S3 event, delivered after the
    reply as on AWS, indexes it before the read."""
    reply = put_photo(client, key, data, content_type, **headers)
    assert reply.status_code == 201, reply.json_body
    return client.http.get(f"/images/{key}").json_body
