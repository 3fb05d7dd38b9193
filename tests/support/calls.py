"""Requests the tests make through chalice.test.Client."""


def put_photo(client, key: str, data: bytes, content_type: str = "image/jpeg", **headers):
    return client.http.put(f"/index/{key}", body=data, headers={"Content-Type": content_type, **headers})


def search_photo(client, data: bytes, query: str = "", content_type: str = "image/jpeg"):
    return client.http.post(f"/search{query}", body=data, headers={"Content-Type": content_type})
