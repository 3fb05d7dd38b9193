"""After an erasure: the copies of the person's data that each wiring
keeps beyond its live stores, each made to go where the stage can, and
listed with how long it remains (the receipt's `copies`; docs/privacy.md
describes each). Built into Services by wiring.py."""

from collections.abc import Callable

from chalicelib.core.config import Settings
from chalicelib.core.records import iso_after

DAY = 86400
PITR_DAYS = 35  # DynamoDB's point-in-time recovery window


def embedded(settings: Settings, db, collection) -> Callable[[str], list[dict]]:
    """The embedded stage: its write-ahead log is emptied and its index
    snapshot saved again now; its backups and audit log are listed."""
    from chalicelib.ops import backup

    def copies(moment: str) -> list[dict]:
        emptied = db.checkpoint()
        collection.flush()
        found = [
            {
                "copy": f"the database's write-ahead log ({settings.data_dir / 'faceprint.db-wal'})",
                "holds": "the erased records' last versions, until a checkpoint copies the log into the database",
                "until": moment if emptied else None,
                "note": "checkpointed and emptied now (TRUNCATE); deleted rows are zeroed (secure_delete)"
                if emptied
                else "a reader held the log: SQLite's next checkpoint (every 1000 pages written) empties it",
            },
            {
                "copy": f"the collection's index snapshot ({settings.data_dir / 'faceprint.index'})",
                "holds": "their face descriptors, compressed",
                "until": moment,
                "note": "saved again now without their faces",
            },
        ]
        keep = settings.backup_keep_days
        for entry in backup.registered_backups(settings.data_dir):
            found.append(
                {
                    "copy": f"the backup in {entry['folder']}",
                    "holds": "the archive as it was when taken: their faces, name and photos",
                    "until": iso_after(entry["takenAt"], keep * DAY) if keep else None,
                    "note": "`make erase PERSON=<id>` purges it now; `make backup` into it replaces it; "
                    + (
                        f"a `make backup` after {keep} days deletes it (FACEPRINT_BACKUP_KEEP_DAYS)"
                        if keep
                        else "kept until you delete it (FACEPRINT_BACKUP_KEEP_DAYS=0)"
                    ),
                }
            )
        found += _logs(settings, moment, f"{settings.data_dir / 'audit'} (a file a day)")
        found.append(
            {
                "copy": "the disk under the data folder",
                "holds": "blocks of files deleted or replaced, until the filesystem reuses them",
                "until": None,
                "note": "beyond a program's reach (SSDs remap blocks): keep the data folder on an encrypted disk",
            }
        )
        return found

    return copies


def aws(settings: Settings) -> Callable[[str], list[dict]]:
    """An AWS stage: what its services keep, which the API cannot reach."""

    def copies(moment: str) -> list[dict]:
        return [
            {
                "copy": "DynamoDB point-in-time recovery of the images, faces and people tables",
                "holds": "their records as they were at any second of the window",
                "until": iso_after(moment, PITR_DAYS * DAY),
                "note": "a table restored to a moment before this erasure brings them back: erase them again "
                "after any restore (their id is in the audit log)",
            },
            {
                "copy": f"older versions of photos in {settings.bucket}",
                "holds": "versions replaced by an upload within the last day, which may show them (the versions "
                "of the photos this erasure deleted or cleaned are gone already)",
                "until": iso_after(moment, DAY),
                "note": "the bucket's lifecycle rule deletes them a day after they were replaced; copies you made "
                "yourself (replication, AWS Backup) are not reached",
            },
            {
                "copy": f"the Rekognition collection {settings.collection}",
                "holds": "nothing: their faces and User were deleted",
                "until": moment,
                "note": "AWS may keep images it processed to improve its services unless your organisation "
                "opts out (AWS Organizations: an AI services opt-out policy for Rekognition)",
            },
            *_logs(settings, moment, f"the log group {settings.audit_log_group}"),
        ]

    return copies


def _logs(settings: Settings, moment: str, audit: str) -> list[dict]:
    days = settings.audit_retention_days
    return [
        {
            "copy": f"the audit log, {audit}",
            "holds": "their person id and face ids, in the lines of requests that named them or returned them",
            "until": iso_after(moment, days * DAY),
            "note": f"kept {days} days (FACEPRINT_AUDIT_RETENTION_DAYS), then deleted",
        },
        {
            "copy": "the request and indexing logs",
            "holds": "nothing of them: route templates, statuses and counts, never keys, ids, names or metadata",
            "until": moment,
            "note": f"on AWS kept {settings.log_retention_days} days (FACEPRINT_LOG_RETENTION_DAYS)",
        },
    ]
