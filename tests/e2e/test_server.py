"""A real `chalice local` server (as `make run` starts it), one thread per
request: concurrent clients must all get the replies they deserve."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.live_server import live_server
from tests.support.photos import people, photo

JPEG = {"Content-Type": "image/jpeg"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("server") / "data") as running:
        yield running


def test_the_server_answers_info(server):
    status, body, _ = server.request("GET", "/info")
    assert status == 200 and body["engine"] == "local"


def test_eight_concurrent_clients_index_and_search(server):
    names = [n for n, who in people().items() if who]

    def client(i):
        replies = []
        for name in names[i::8]:
            replies.append(server.request("PUT", f"/index/c{i}-{name}", photo(name), JPEG)[:2])
            replies.append(server.request("POST", "/search", photo(name), JPEG)[:2])
        return replies

    with ThreadPoolExecutor(8) as pool:
        replies = [r for batch in pool.map(client, range(8)) for r in batch]
    assert [status for status, _ in replies] == [201 if "image" in body else 200 for _, body in replies]
    for i, name in enumerate(names):
        status, body, _ = server.request("GET", f"/images/c{i % 8}-{name}")
        assert status == 200 and len(body["faces"]) == len(people()[name])
    # Every acknowledged photo is searchable afterwards.
    status, body, _ = server.request("POST", "/search?max=100", photo("Jim-Carrey.jpg"), JPEG)
    assert {m["imageKey"] for m in body["matches"]} == {f"c{names.index('Jim-Carrey.jpg') % 8}-Jim-Carrey.jpg"}


def test_concurrent_puts_of_one_name_leave_one_consistent_image(server):
    versions = ["Keanu-Avril-Mike.jpg", "Jim-Carrey.jpg", "Justin-Trudeau-Barack-Obama.jpg", "Lawrence2.jpg"] * 3

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: server.request("PUT", "/index/same.jpg", photo(n), JPEG)[0], versions))
    assert statuses == [201] * len(versions)
    _, body, _ = server.request("GET", "/images/same.jpg")
    assert body["image"]["faceCount"] == len(body["faces"]) > 0
    ids = {f["FaceId"] for f in body["faces"]}
    search_all = server.request("POST", "/search?threshold=0&max=4096", photo("Lawrence2.jpg"), JPEG)[1]
    in_collection = {m["FaceId"] for m in search_all["matches"] if m["imageKey"] == "same.jpg"}
    assert in_collection == ids, "faces of replaced versions were left in the collection"
    _, info, _ = server.request("GET", "/info")
    assert info["faces"] == len(search_all["faces"]["FaceMatches"])
