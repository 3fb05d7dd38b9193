"""Keys, labels, metadata and paging tokens, alone."""

import pytest

from chalicelib.api.metadata import metadata_from_headers
from chalicelib.api.params import key_from_path, key_from_query
from chalicelib.core.config import Settings
from chalicelib.core.errors import BadRequest
from chalicelib.core.keys import encode_key, external_image_id, key_from_external_image_id
from chalicelib.core.labels import label_for
from chalicelib.core.limits import EXTERNAL_IMAGE_ID
from chalicelib.embedded.paging import decode_token, encode_token
from tests.support.photos import REPO


@pytest.mark.parametrize(
    "key, label",
    [
        ("Keanu-Avril-Lawrence.jpg", "Keanu avril lawrence"),
        ("smiling_lady.png", "Smiling lady"),
        ("archive.2024.JPG", "Archive.2024"),
        ("noextension", "Noextension"),
        (".hidden", ".hidden"),
    ],
)
def test_labels_follow_the_old_projects_rule(key, label):
    assert label_for(key, {}) == label


def test_name_metadata_wins_over_the_filename():
    assert label_for("x.jpg", {"name": "Ada Lovelace"}) == "Ada Lovelace"


@pytest.mark.parametrize(
    "key",
    ["plain.jpg", "with space.jpg", "été 😀.png", "b64:looks-encoded", "a:b.c-d_e", "x" * 255, "é" * 127],
)
def test_every_key_maps_to_a_valid_external_image_id_and_back(key):
    external = external_image_id(key)
    assert EXTERNAL_IMAGE_ID.fullmatch(external)
    assert key_from_external_image_id(external) in (key, None)


def test_readable_keys_stay_readable_and_long_ones_are_hashed():
    assert external_image_id("Keanu-Reeves.jpg") == "Keanu-Reeves.jpg"
    assert key_from_external_image_id(external_image_id("with space.jpg")) == "with space.jpg"
    assert external_image_id("é" * 127).startswith("sha256:")


def test_path_keys_are_percent_decoded_once():
    assert key_from_path("a%2520b.jpg") == "a%20b.jpg"
    assert key_from_path("caf%C3%A9+1.jpg") == "café+1.jpg"
    with pytest.raises(BadRequest):
        key_from_path("%2E%2E")


@pytest.mark.parametrize("key", ["album/keanu.jpg", "people/Keanu Reeves/1.jpg", "a/b/c/d.png"])
def test_folder_keys_come_percent_encoded_or_in_their_b64_form(key):
    assert key_from_path(key.replace("/", "%2F").replace(" ", "%20")) == key
    assert "/" not in encode_key(key) and key_from_path(encode_key(key)) == key
    assert label_for(key, {}) == label_for(key.rsplit("/", 1)[1], {})


@pytest.mark.parametrize("key", ["/lead.jpg", "trail/", "a//b.jpg", "a/./b.jpg", "a/../b.jpg", "..", "."])
def test_folder_keys_with_empty_or_dot_parts_are_refused(key):
    with pytest.raises(BadRequest):
        key_from_path(key.replace("/", "%2F"))
    with pytest.raises(BadRequest):
        key_from_path(encode_key(key), stored=False)


def test_a_stored_key_the_api_would_refuse_is_still_reachable_in_b64_form():
    copied_in = "odd//name.jpg"  # S3 allows it; the API would not create it
    assert key_from_path(encode_key(copied_in)) == copied_in
    with pytest.raises(BadRequest):
        key_from_path("b64:not base64!")


def test_metadata_names_are_lowercased_and_other_headers_ignored():
    headers = {"X-Amz-Meta-Name": "Ada", "content-type": "image/jpeg", "x-amz-meta-Take": " 3 "}
    assert metadata_from_headers(headers) == {"name": "Ada", "take": "3"}


def test_metadata_needs_a_name():
    with pytest.raises(BadRequest):
        metadata_from_headers({"x-amz-meta-": "v"})


def test_tokens_round_trip_and_reject_garbage():
    assert decode_token(encode_token(["é", 3])) == ["é", 3]
    assert decode_token(None) is None
    with pytest.raises(BadRequest):
        decode_token("%%%")


def test_a_key_in_a_query_parameter_is_not_decoded_twice():
    assert key_from_query("a%20b.jpg") == "a%20b.jpg"
    assert key_from_query(encode_key("album/a.jpg")) == "album/a.jpg"


def test_the_default_data_folder_is_data_in_the_repository():
    assert Settings.from_env({}).data_dir == REPO / "data"  # as the README and .gitignore say
