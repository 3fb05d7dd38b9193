"""Settings, read once per stage from the environment into a typed object.

Chalice's test client sets a stage's environment only while a request runs,
so nothing here runs at import time: wiring.py calls `Settings.from_env()`.
"""

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from chalicelib.core.errors import ConfigurationError
from chalicelib.core.limits import MAX_FACES
from chalicelib.core.naming import StrangerModel, parse_stranger_model

ENGINES = ("local", "rekognition")
QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
# The AWS stage's resources: .chalice/config.json names them per stage and
# chalicelib/ops/aws_setup.py creates them from the same variables.
AWS_RESOURCES = {
    "bucket": "FACEPRINT_BUCKET",
    "images_table": "FACEPRINT_IMAGES_TABLE",
    "faces_table": "FACEPRINT_FACES_TABLE",
    "people_table": "FACEPRINT_PEOPLE_TABLE",
    "collection": "FACEPRINT_COLLECTION",
    "index_queue": "FACEPRINT_INDEX_QUEUE",
}
# The pace of indexing on AWS (docs/deploy.md, "Indexing at volume"):
# FACEPRINT_INDEX_TPS is the share of Rekognition's IndexFaces quota the
# stage's indexing may use (the quota is 5 a second in most regions, 50 in
# the large ones), FACEPRINT_DELETE_TPS DeleteFaces' (5 by default). Every
# call takes a turn on the quota's schedule, which all the stage's
# functions share (core/pacing.py). The queue's workers number TPS x
# WORKER_SECONDS: twice as many as calls a second, so that a call's latency
# (up to WORKER_SECONDS with the rest of a message's work) never slows the
# pace. FACEPRINT_SEARCH_TPS is SearchFacesByImage's quota: one budget for
# every search route and method (core/pacing.py), and the usage plan's
# method throttles (`make aws-setup`).
# FACEPRINT_PACE_TABLE: the DynamoDB table that holds the schedules (the
# stage's people table by default); stages that share an account and
# region and name the same one share one pace (each keeps its breaker and
# its check's place in its own people table).
DEFAULT_INDEX_TPS = 5.0
DEFAULT_SEARCH_TPS = 5.0
DEFAULT_DELETE_TPS = 5.0
# The most faces a Rekognition collection holds (its quota: 10 million by
# default, 20 million at most: docs/deploy.md, "A full collection").
DEFAULT_COLLECTION_FACES = 10_000_000
MAX_COLLECTION_FACES = 20_000_000
MAX_TPS = 1000.0
WORKER_SECONDS = 2.0
# Every AWS call (chalicelib/aws/clients.py): botocore's attempts in all,
# and how long each may take to connect and to answer. The worst case of
# one call is what an indexing worker keeps in reserve before it starts a
# message (core/index_queue.py).
AWS_CALL_ATTEMPTS = 4
AWS_CONNECT_TIMEOUT = 5
AWS_READ_TIMEOUT = 20
# botocore's standard retry mode waits up to 2^(attempt - 1) seconds
# (with jitter) before each further attempt.
AWS_BACKOFF_SECONDS = sum(2**attempt for attempt in range(AWS_CALL_ATTEMPTS - 1))
# Lambda's bounds for an SQS event source's maximum concurrency.
MIN_WORKERS, MAX_WORKERS = 2, 1000
# How long logs and backups are kept (docs/privacy.md). CloudWatch Logs
# takes only these retentions, in days.
LOG_RETENTION_CHOICES = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)
DEFAULT_LOG_RETENTION_DAYS = 30  # the functions' logs: no personal data in them
DEFAULT_AUDIT_RETENTION_DAYS = 90  # the audit log: who asked, and whose ids came back
DEFAULT_BACKUP_KEEP_DAYS = 30  # a backup folder not renewed for this long goes at the next `make backup`


@dataclass(frozen=True)
class Settings:
    stage: str
    engine: str
    data_dir: Path
    debug: bool = False
    bucket: str = ""
    images_table: str = ""
    faces_table: str = ""
    people_table: str = ""
    collection: str = ""
    quality_filter: str = "AUTO"
    max_faces: int = MAX_FACES
    region: str | None = None
    # FACEPRINT_STRANGER_SIMILARITY: the naming rule's stranger model for
    # this stage (core/naming.py); None: the engine's own.
    stranger_model: StrangerModel | None = None
    index_queue: str = ""
    index_tps: float = DEFAULT_INDEX_TPS
    index_workers: int = 0  # 0: index_tps x WORKER_SECONDS (index_workers_for)
    search_tps: float = DEFAULT_SEARCH_TPS
    delete_tps: float = DEFAULT_DELETE_TPS
    pace_table: str = ""  # "": the people table
    collection_faces: int = DEFAULT_COLLECTION_FACES
    # Offline only (API Gateway checks keys on AWS). Left out of equality, so
    # a key change never builds a second set of stores on one data folder,
    # and out of repr, so the key never reaches a log.
    api_key: str = field(default="", compare=False, repr=False)
    cors_origins: tuple[str, ...] = field(default=(), compare=False)
    # Offline only: the host names the server answers to besides loopback
    # names and IP addresses (api/guard.py), lower case, without a port.
    allowed_hosts: tuple[str, ...] = field(default=(), compare=False)
    # FACEPRINT_KEEP_LOCATION: keep the GPS location of uploaded photos
    # (stripped by default: core/location.py).
    keep_location: bool = field(default=False, compare=False)
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    audit_retention_days: int = DEFAULT_AUDIT_RETENTION_DAYS
    backup_keep_days: int = DEFAULT_BACKUP_KEEP_DAYS  # 0: keep every backup folder

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        engine = env.get("FACEPRINT_ENGINE", "local")
        stage = env.get("FACEPRINT_STAGE", "local")
        if engine not in ENGINES:
            raise ConfigurationError(f"FACEPRINT_ENGINE={engine!r}: set it to one of {', '.join(ENGINES)}.")
        if engine == "local" and env.get("AWS_LAMBDA_FUNCTION_NAME"):
            raise ConfigurationError(
                f"Stage {stage!r} runs in Lambda with the embedded engine, which is not deployed there: "
                "set FACEPRINT_ENGINE=rekognition in the stage's environment_variables (.chalice/config.json)."
            )
        aws = {name: env.get(var, "").strip() for name, var in AWS_RESOURCES.items()} if engine == "rekognition" else {}
        missing = [AWS_RESOURCES[name] for name, value in aws.items() if not value]
        if missing:
            raise ConfigurationError(
                f"Stage {stage!r} uses Rekognition but {', '.join(missing)} is not set: "
                "name the stage's resources in its environment_variables (.chalice/config.json)."
            )
        quality_filter = env.get("FACEPRINT_QUALITY_FILTER", "AUTO").upper()
        if quality_filter not in QUALITY_FILTERS:
            raise ConfigurationError(
                f"FACEPRINT_QUALITY_FILTER={quality_filter!r}: set it to one of {', '.join(QUALITY_FILTERS)}."
            )
        return cls(
            stage=stage,
            engine=engine,
            data_dir=Path(env.get("FACEPRINT_DATA_DIR") or DEFAULT_DATA_DIR),
            debug=_yes(env.get("FACEPRINT_DEBUG", "")),
            quality_filter=quality_filter,
            max_faces=_whole_number(env, "FACEPRINT_MAX_FACES", MAX_FACES, 1, MAX_FACES),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            index_tps=_positive_number(env, "FACEPRINT_INDEX_TPS", DEFAULT_INDEX_TPS, MAX_TPS),
            index_workers=_whole_number(env, "FACEPRINT_INDEX_WORKERS", 0, MIN_WORKERS, MAX_WORKERS),
            search_tps=_positive_number(env, "FACEPRINT_SEARCH_TPS", DEFAULT_SEARCH_TPS, MAX_TPS),
            delete_tps=_positive_number(env, "FACEPRINT_DELETE_TPS", DEFAULT_DELETE_TPS, MAX_TPS),
            pace_table=env.get("FACEPRINT_PACE_TABLE", "").strip(),
            collection_faces=_whole_number(
                env, "FACEPRINT_COLLECTION_FACES", DEFAULT_COLLECTION_FACES, 1, MAX_COLLECTION_FACES
            ),
            api_key=env.get("FACEPRINT_API_KEY", "").strip(),
            cors_origins=_origins(env.get("FACEPRINT_CORS_ORIGINS", "")),
            allowed_hosts=_host_names(env.get("FACEPRINT_ALLOWED_HOSTS", "")),
            keep_location=_yes(env.get("FACEPRINT_KEEP_LOCATION", "")),
            stranger_model=_stranger_model(env.get("FACEPRINT_STRANGER_SIMILARITY", "")),
            log_retention_days=_retention(env, "FACEPRINT_LOG_RETENTION_DAYS", DEFAULT_LOG_RETENTION_DAYS),
            audit_retention_days=_retention(env, "FACEPRINT_AUDIT_RETENTION_DAYS", DEFAULT_AUDIT_RETENTION_DAYS),
            backup_keep_days=_whole_number(env, "FACEPRINT_BACKUP_KEEP_DAYS", DEFAULT_BACKUP_KEEP_DAYS, 0, 36500),
            **aws,
        )

    @property
    def audit_log_group(self) -> str:
        """The AWS stage's audit log (make aws-setup creates it, with its own retention)."""
        return f"/faceprint/{self.stage}/audit"

    @property
    def workers(self) -> int:
        """How many indexing workers the queue runs at once (its event
        source's maximum concurrency)."""
        return self.index_workers or index_workers_for(self.index_tps)

    @property
    def index_interval(self) -> float:
        """Seconds each worker has for a message at the full pace: all of
        them together make index_tps calls a second."""
        return self.workers / self.index_tps


def worst_call_seconds() -> float:
    """The longest one AWS call can take before it fails: each attempt
    connecting and waiting for its answer to the end, botocore's backoff
    between them (about 107 s)."""
    return AWS_CALL_ATTEMPTS * (AWS_CONNECT_TIMEOUT + AWS_READ_TIMEOUT) + AWS_BACKOFF_SECONDS


def index_workers_for(tps: float) -> int:
    return min(MAX_WORKERS, max(MIN_WORKERS, math.ceil(tps * WORKER_SECONDS)))


def index_workers_at_import(env) -> int:
    """The workers app.py declares on its SQS handler, read when Chalice
    loads the app (with the stage's environment, for `chalice deploy` and
    `chalice package`). Never raises: a bad setting is refused, by name, by
    Settings.from_env at the first request and by `make aws-setup`."""
    try:
        return Settings.from_env(env).workers
    except ConfigurationError:
        return index_workers_for(DEFAULT_INDEX_TPS)


def _positive_number(env, name: str, default: float, high: float) -> float:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= high:
        raise ConfigurationError(f"{name}={raw!r}: set it to a number above 0 and at most {high:g}.")
    return value


def _whole_number(env, name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={raw!r}: set it to a whole number from {low} to {high}.")
    return value


def _retention(env, name: str, default: int) -> int:
    raw = env.get(name, "")
    if not raw:
        return default
    if not raw.strip().isdigit() or int(raw) not in LOG_RETENTION_CHOICES:
        raise ConfigurationError(
            f"{name}={raw!r}: set it to one of the retentions CloudWatch Logs takes, in days: "
            f"{', '.join(map(str, LOG_RETENTION_CHOICES))}."
        )
    return int(raw)


def _stranger_model(raw: str) -> StrangerModel | None:
    """FACEPRINT_STRANGER_SIMILARITY=mean,sd[,spread]: how a stranger's face
    scores against a query on this stage's engine (docs/engine.md "Names at a million faces")."""
    if not raw.strip():
        return None
    try:
        return parse_stranger_model(raw, "FACEPRINT_STRANGER_SIMILARITY")
    except ValueError as e:
        raise ConfigurationError(
            f"FACEPRINT_STRANGER_SIMILARITY={raw!r}: set it to the mean and standard deviation of the similarity "
            f"a stranger's face scores, and optionally its spread around one query, as mean,sd[,spread] ({e}), "
            "e.g. 33,11."
        ) from None


def _yes(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes")


def _host_names(raw: str) -> tuple[str, ...]:
    """FACEPRINT_ALLOWED_HOSTS: comma-separated host names (any port)."""
    names = tuple(name.strip().lower().rstrip(".") for name in raw.split(",") if name.strip())
    for name in names:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*", name):
            raise ConfigurationError(
                f"FACEPRINT_ALLOWED_HOSTS has {name!r}: list each host name the server answers to "
                "(photos.lan, my-laptop), comma-separated, without scheme, port or wildcard."
            )
    return names


def _origins(raw: str) -> tuple[str, ...]:
    """FACEPRINT_CORS_ORIGINS: comma-separated origins, each scheme://host[:port]."""
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin == "*" or "://" not in origin:
            raise ConfigurationError(
                f"FACEPRINT_CORS_ORIGINS has {origin!r}: list each allowed origin as scheme://host[:port], "
                "comma-separated (no wildcard)."
            )
    return origins
