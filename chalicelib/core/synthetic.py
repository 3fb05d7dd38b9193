"""Synthetic images: the faces `make seed` adds to an embedded archive to
try it at scale (chalicelib/ops/seeding.py), with no photo behind them.
This module is the one place that says what one is; `check`, the photo
download and `make unseed` ask it.

A synthetic image is recorded under KEY_PREFIX with the etag ETAG, which
no stored photo can have (a photo's etag is a hex digest of its bytes), so
neither an upload nor anything else can pass for one: a real photo put at
such a key replaces it like any new version. Its metadata says so too
(METADATA, and a `name` that the search matches show), and each of its
faces carries an ExternalImageId starting with EXTERNAL_ID_PREFIX."""

KEY_PREFIX = "synthetic/"
ETAG = "synthetic"
EXTERNAL_ID_PREFIX = "synthetic:"
METADATA = {"synthetic": "true"}


def is_synthetic(key: str, etag: str) -> bool:
    """Whether the image recorded under `key` with `etag` is a synthetic one."""
    return etag == ETAG and key.startswith(KEY_PREFIX)


def key(run: str, number: int) -> str:
    """The key of synthetic image `number` of seeding run `run`."""
    return f"{KEY_PREFIX}{run}-{number:07d}"


def external_image_id(image_key: str) -> str:
    """The ExternalImageId of a synthetic image's faces (valid for Rekognition:
    letters, digits and `-:`)."""
    return EXTERNAL_ID_PREFIX + image_key.removeprefix(KEY_PREFIX)


def no_photo_message(image_key: str) -> str:
    return (
        f"{image_key!r} is a synthetic image (added by `make seed` to try the archive at scale): "
        "it has faces but no photo to download."
    )
