"""Settings, read once per stage from the environment into a typed object.

Chalice's test client sets a stage's environment only while a request runs,
so nothing here runs at import time: wiring.py calls `Settings.from_env()`.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from chalicelib.errors import ConfigurationError

ENGINES = ("local", "rekognition")
DEFAULT_DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Settings:
    stage: str
    engine: str
    data_dir: Path
    debug: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = os.environ if environ is None else environ
        engine = env.get("FACEPRINT_ENGINE", "local")
        if engine not in ENGINES:
            raise ConfigurationError(f"FACEPRINT_ENGINE={engine!r}: set it to one of {', '.join(ENGINES)}.")
        return cls(
            stage=env.get("FACEPRINT_STAGE", "local"),
            engine=engine,
            data_dir=Path(env.get("FACEPRINT_DATA_DIR") or DEFAULT_DATA_DIR),
            debug=env.get("FACEPRINT_DEBUG", "").lower() in ("1", "true", "yes"),
        )
