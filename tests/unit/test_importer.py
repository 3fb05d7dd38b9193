"""Importing a folder tree, over the in-memory fakes: keys from paths,
names from folders, a second run that uploads nothing, an interrupted run
that carries on, failures with their reasons."""

from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.core import indexing as indexing_module
from chalicelib.core.keys import validate_key
from chalicelib.ops import importer
from chalicelib.ops.memory import fake_services, photo_of


@pytest.fixture
def svc():
    return fake_services()


@pytest.fixture
def library(tmp_path) -> Path:
    """people/<name>/<n>.png, a few loose photos, and things that are not photos."""
    root = tmp_path / "Pictures"
    for person, count in (("Ada Lovelace", 3), ("Zoë", 2)):
        for n in range(count):
            (root / "people" / person).mkdir(parents=True, exist_ok=True)
            (root / "people" / person / f"{n}.png").write_bytes(photo_of(person, shade=n))
    (root / "trip").mkdir()
    (root / "trip" / "group.PNG").write_bytes(photo_of("bob", "cy"))
    (root / "trip" / "notes.txt").write_text("not a photo")
    (root / ".thumbnails").mkdir()
    (root / ".thumbnails" / "x.png").write_bytes(photo_of("ghost"))
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return root


def test_keys_are_the_relative_paths_made_valid():
    assert importer.key_for(Path("people/Ada Lovelace/1.jpg")) == "people/Ada Lovelace/1.jpg"
    assert importer.key_for(Path("Cafe\u0301/a\tb.jpg")) == "Caf\u00e9/a_b.jpg"  # NFC, no control characters
    long = Path("x" * 200, "y" * 200 + ".heic")
    key = importer.key_for(long)
    assert len(key.encode()) <= 255 and key.endswith(".heic") and validate_key(key) == key
    assert key != importer.key_for(Path("z" + "x" * 199, "y" * 200 + ".heic"))


def test_names_come_from_the_folder_in_ascii():
    assert importer.name_from_folder(Path("people/Keanu Reeves/1.jpg")) == "Keanu Reeves"
    assert importer.name_from_folder(Path("people/Zoë/1.jpg")) == "Zoe"
    assert importer.name_from_folder(Path("loose.jpg")) is None


def test_a_folder_is_imported_with_names_and_a_summary(svc, library, tmp_path):
    summary = importer.import_folder(svc, library, tmp_path / "journal.json", names_from_folders=True)
    assert (summary.photos, summary.uploaded, summary.unchanged) == (7, 6, 0)
    assert summary.faces == 7  # 5 portraits, a group of 2; the broken photo has none
    assert summary.refused == [("broken.jpg", summary.refused[0][1])] and "read" in summary.refused[0][1]
    assert summary.failed == []
    assert summary.skipped == [
        ("trip/notes.txt", "TXT is not a photo type the API takes (JPEG, PNG, HEIC/HEIF, WebP or AVIF)")
    ]
    image = svc.records.get_image("people/Zoë/1.png")
    assert image["status"] == "indexed" and image["metadata"] == {"name": "Zoe"}
    assert svc.records.get_image("trip/group.PNG")["metadata"] == {"name": "trip"}  # the folder it sits in
    assert svc.photos.head(".thumbnails/x.png") is None


def test_a_second_run_uploads_nothing_again(svc, library, tmp_path):
    importer.import_folder(svc, library, tmp_path / "journal.json")
    calls = len(svc.engine.calls)
    again = importer.import_folder(svc, library, tmp_path / "journal.json")
    assert (again.uploaded, again.unchanged, len(again.refused)) == (0, 6, 1)  # only the broken one is tried again
    assert len(svc.engine.calls) == calls


def test_a_changed_photo_is_imported_again(svc, library, tmp_path):
    importer.import_folder(svc, library, tmp_path / "journal.json")
    (library / "trip" / "group.PNG").write_bytes(photo_of("dee"))
    again = importer.import_folder(svc, library, tmp_path / "journal.json")
    assert again.uploaded == 1 and again.unchanged == 5
    assert svc.records.get_image("trip/group.PNG")["faceCount"] == 1


def test_an_interrupted_run_carries_on(svc, library, tmp_path):
    def stop_after_three(progress):
        if progress.done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        importer.import_folder(svc, library, tmp_path / "journal.json", workers=1, on_progress=stop_after_three)
    uploaded_before = svc.records.count_images()
    rest = importer.import_folder(svc, library, tmp_path / "journal.json", workers=1)
    assert rest.unchanged == uploaded_before > 0 and rest.uploaded == 6 - uploaded_before
    assert svc.records.count_images() == 6


def test_a_failure_that_may_pass_is_told_apart_from_a_refusal(svc, library, tmp_path, monkeypatch):
    from chalicelib.core.errors import ServiceUnavailable

    def busy(*args, **kwargs):
        raise ServiceUnavailable("The service is busy (SlowDown); retry after a pause.")

    monkeypatch.setattr(svc.photos, "put", busy)
    summary = importer.import_folder(svc, library / "trip", tmp_path / "journal.json")
    assert summary.failed == [("group.PNG", "The service is busy (SlowDown); retry after a pause.")]
    assert summary.refused == [] and summary.uploaded == 0


def test_watching_follows_the_uploads_until_none_is_pending_and_says_why_each_failed():
    """What `make import STAGE=dev` shows once the photos are uploaded: the
    bucket's events index them meanwhile (here: a round at a time)."""
    svc = fake_services(index_on_upload=False)
    keys = [f"p{n}.png" for n in range(5)]
    for n, key in enumerate(keys):
        indexing_module.upload_image(svc, key, photo_of(f"person {n}"), {})
    rounds = iter(
        [
            lambda: indexing_module.index_photo(svc, "p0.png"),
            lambda: _end(
                svc, "p1.png", status="failed", error="Indexing failed 5 times; the last time: busy", attempts=5
            ),
            lambda: _end(svc, "p2.png", status="failed", error="Rekognition cannot read this image format"),
            lambda: (indexing_module.index_photo(svc, "p3.png"), svc.records.remove_image("p4.png")),
        ]
    )
    seen = []
    watched = importer.watch(
        svc, keys, on_progress=lambda i: seen.append((i.settled, i.pending)), sleep=lambda _: next(rounds)()
    )
    assert seen == [(0, 5), (1, 4), (2, 3), (3, 2), (5, 0)]
    assert (watched.indexed, watched.faces, watched.gone) == (2, 2, 1)
    assert watched.failed == [("p1.png", "Indexing failed 5 times; the last time: busy")]
    assert watched.refused == [("p2.png", "Rekognition cannot read this image format")]


def _end(svc, key: str, **changes) -> None:
    image = svc.records.get_image(key)
    svc.records.put_image({**image, **changes}, image["revision"])


@pytest.mark.parametrize(("tps", "uploads"), [("5", 8), ("50", 50), ("500", 64)])
def test_an_aws_import_keeps_as_many_uploads_going_as_the_stage_indexes_a_second(tmp_path, tps, uploads):
    """S3 takes many PUTs a second: the import feeds the stage's pace, at least eight at a time."""
    import threading
    import time

    svc = fake_services(index_on_upload=False)
    svc = replace(svc, settings=replace(svc.settings, index_tps=float(tps)))
    for n in range(2 * uploads):
        (tmp_path / "many").mkdir(exist_ok=True)
        (tmp_path / "many" / f"{n}.png").write_bytes(photo_of(f"person {n}"))
    put, lock, running, peak = svc.photos.put, threading.Lock(), [0], [0]

    def slow_put(*args, **kwargs):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.3)  # long enough for every upload under way to start, on a loaded machine
        try:
            return put(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    svc.photos.put = slow_put
    summary = importer.import_folder(svc, tmp_path / "many", tmp_path / "journal.json")
    assert summary.uploaded == summary.pending == 2 * uploads
    assert peak[0] == importer.aws_uploads(float(tps)) == uploads
