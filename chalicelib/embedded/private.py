"""The embedded archive's files are its owner's alone: folders 0700, files
0600 (faces and names are biometric data; a shared machine's other users
must not read them). The data folder, the database and its write-ahead log,
the collection's index, the photos and the backups are all made so, and an
archive made before is tightened when opened."""

import errno
import os
from pathlib import Path

from chalicelib.core.errors import ConfigurationError

FOLDER, FILE = 0o700, 0o600
# What the server and the maintenance commands create by other means (log
# files, progress files) gets the same: their entry points set this umask.
UMASK = 0o077


def folder(path: Path) -> Path:
    """`path` made (with its parents) if need be, and its owner's alone."""
    path.mkdir(parents=True, exist_ok=True, mode=FOLDER)
    os.chmod(path, FOLDER)
    return path


def file(path: Path) -> Path:
    """`path` made empty if missing, and its owner's alone."""
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, FILE))
    os.chmod(path, FILE)
    return path


def data_folder(path: Path) -> Path:
    """The archive's folder (FACEPRINT_DATA_DIR), made if missing and its
    owner's alone, once a file was written in it: else a ConfigurationError
    that says what to do (a file of that name, a folder under a file, a
    folder this user may not write, a read-only disk)."""
    probe = path / f".faceprint-write-test-{os.getpid()}"
    try:
        folder(path)
        file(probe).unlink()
    except OSError as e:
        raise ConfigurationError(_unusable(path, e)) from None
    return path


def file_in_the_way(path: Path) -> str | None:
    """What data_folder would say of `path` being, or being under, a file;
    None if it is not. Makes nothing (make doctor asks)."""
    if any(p.exists() and not p.is_dir() for p in (path, *path.parents)):
        return _unusable(path, OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)))
    return None


def _unusable(path: Path, error: OSError) -> str:
    where = f"The data folder, FACEPRINT_DATA_DIR={path},"
    if error.errno in (errno.EEXIST, errno.ENOTDIR):
        blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        what = "is a file" if blocking == path else f"is under a file ({blocking})"
        return f"{where} {what}: name a folder (it is made if missing), e.g. FACEPRINT_DATA_DIR=$HOME/faceprint-data."
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"{where} cannot be written ({error.strerror}): name a folder this user may write."
    return f"{where} cannot be used: {error.strerror or error}."
