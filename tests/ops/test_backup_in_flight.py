"""A backup taken at the moment operations are half done, as a crash (or a
backup under load) catches them: an upload recorded pending and not yet
indexed, a delete that has removed the photo and not yet its records,
faces added to the collection and not yet recorded. `make restore`
finishes each, says so, and the restored archive checks clean; a run
under way at that moment is not waited for."""

from chalicelib import wiring
from chalicelib.core import indexing, records
from chalicelib.core.config import Settings
from chalicelib.core.keys import external_image_id
from chalicelib.core.records import PENDING, image_record, now
from chalicelib.ops import cli, maintenance
from tests.support.interleave import Steps
from tests.support.photos import photo


def test_restore_finishes_what_was_in_flight_when_the_backup_was_taken(tmp_path, monkeypatch, capsys):
    live, restored = tmp_path / "live", tmp_path / "restored"
    svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(live)}))
    for key, name in {"keanu.jpg": "Keanu-Reeves.jpg", "avril.jpg": "Avril-Lavigne.jpg"}.items():
        indexing.upload_image(svc, key, photo(name), {"name": name.removesuffix(".jpg")})
    # An upload half done: stored and recorded pending, its indexing not run yet.
    stored = svc.photos.put("mike.jpg", photo("Mike-Meyers.jpg"), "image/jpeg", {"name": "Mike"})
    svc.records.put_image(image_record(stored, PENDING, pendingSince=now()), None)
    # A delete half done: the photo removed, its records and faces not yet.
    svc.photos.delete("avril.jpg")
    # An indexing run half done: its faces in the collection, not yet recorded.
    lawrence = svc.photos.put("lawrence.jpg", photo("Lawrence2.jpg"), "image/jpeg", {})
    svc.engine.index_faces(lawrence.version, external_image_id("lawrence.jpg"))
    svc.photos.delete("lawrence.jpg")
    in_flight = {d.kind for d in maintenance.check(svc)}
    assert in_flight == {maintenance.PHOTO_PENDING, maintenance.RECORD_WITHOUT_PHOTO, maintenance.FACE_WITHOUT_RECORD}

    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(live))
    assert cli.main(["backup", str(tmp_path / "backup")]) == 0
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(restored))
    assert cli.main(["restore", str(tmp_path / "backup")]) == 0
    out = capsys.readouterr().out
    assert "operation(s) were in flight when the backup was taken; finishing them:" in out
    assert out.splitlines()[-1].startswith("0 disagreement(s) in stage 'local'")

    back = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(restored)}))
    assert maintenance.check(back) == []
    mike = back.records.get_image("mike.jpg")
    assert mike["status"] == "indexed" and mike["faceCount"] == 1 and mike["metadata"] == {"name": "Mike"}
    assert back.records.get_image("avril.jpg") is None and back.photos.head("avril.jpg") is None
    assert back.records.get_image("keanu.jpg")["metadata"] == {"name": "Keanu-Reeves"}
    assert back.photos.read("keanu.jpg") == photo("Keanu-Reeves.jpg")
    assert back.engine.describe()["faces"] == 2  # keanu's and mike's, nothing stray


def test_a_backup_taken_while_the_server_indexed_restores_with_no_run_to_wait_for(tmp_path, monkeypatch, capsys):
    """Issue 25, item 5: the backup catches a run of the live server under
    way (its mark names this machine and a process that still runs). The
    restored archive has no run under way, whatever the mark says: restored
    while that server still runs, the photo is indexed at once, not 15
    minutes later, and the face the run had added is no stray left for
    someone to repair by hand."""
    live, restored = tmp_path / "live", tmp_path / "restored"
    svc = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(live)}))
    stored = svc.photos.put("mike.jpg", photo("Mike-Meyers.jpg"), "image/jpeg", {"name": "Mike"})
    svc.records.put_image(image_record(stored, PENDING, pendingSince=now()), None)
    steps = Steps()
    steps.pause("run", "index_faces")
    run = steps.start("run", indexing.index_photo, steps.wrap(svc), "mike.jpg", stored.version)
    steps.reached("run", "index_faces")  # its face in the collection, its record pending and marked
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(live))
    try:
        assert cli.main(["backup", str(tmp_path / "backup")]) == 0
    finally:
        steps.release("run")
        run.result(60)
    # `make restore` is another process than the server, which still runs: the mark
    # names a live process of this machine, not one this process knows is over.
    monkeypatch.setattr(records.PROCESSES, "this", lambda: "make-restore")
    monkeypatch.setenv("FACEPRINT_DATA_DIR", str(restored))
    assert cli.main(["restore", str(tmp_path / "backup")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("0 disagreement(s) in stage 'local'")
    back = wiring.services(Settings.from_env({"FACEPRINT_DATA_DIR": str(restored)}))
    mike = back.records.get_image("mike.jpg")
    assert mike["status"] == "indexed" and mike["faceCount"] == 1 and "running" not in mike
    assert back.engine.describe()["faces"] == 1
    assert maintenance.check(back) == []
