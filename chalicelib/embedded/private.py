"""The embedded archive's files are its owner's alone: folders 0700, files
0600 (faces and names are biometric data; a shared machine's other users
must not read them). The data folder, the database and its write-ahead log,
the collection's index, the photos and the backups are all made so, and an
archive made before is tightened when opened."""

import os
from pathlib import Path

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
