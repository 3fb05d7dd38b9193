"""The quality measures of every shared face, and of made-up bad ones, with
what each QualityFilter level decides: the figures behind the bars in
chalicelib/embedded/quality.py.

    .venv/bin/python scripts/quality_figures.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chalicelib.embedded.quality import reasons  # noqa: E402
from chalicelib.embedded.workers import FaceAnalyzer  # noqa: E402
from tests.support import imagegen  # noqa: E402
from tests.support.photos import people, photo  # noqa: E402

LEVELS = ("AUTO", "MEDIUM", "HIGH")
KEANU = "Keanu-Reeves.jpg"
KEANU_FACE_PX = 609


def main() -> None:
    analyzer = FaceAnalyzer()
    try:
        columns = ("size", "conf", "bright", "sharp", "roll", "yaw", "pitch")
        print(f"{'photo':44s} " + " ".join(f"{c:>6s}" for c in columns) + "  declined by")
        for name in sorted(people()):
            show(analyzer, name, photo(name))
        for name in (KEANU, "Jim-Carrey.jpg", "Mike-Meyers.jpg", "Lawrence2.jpg"):
            for factor in (0.15, 0.08, 0.03):
                show(analyzer, f"{name} darkened to {factor:.0%}", imagegen.darkened(name, factor))
            for radius in (8, 16, 24):
                show(analyzer, f"{name} blurred, radius {radius}", imagegen.blurred(name, radius))
        for side in (20, 40, 45, 60):
            show(analyzer, f"{KEANU} shrunk to a {side} px face", imagegen.shrunk(KEANU, side / KEANU_FACE_PX))
    finally:
        analyzer.close()


def show(analyzer: FaceAnalyzer, label: str, data: bytes) -> None:
    faces = analyzer.analyze(data, quality_filter="NONE").faces
    if not faces:
        print(f"{label:44s} no face found")
    for face in faces:
        q = face.quality
        declined = "; ".join(f"{level}: {','.join(why)}" for level in LEVELS if (why := reasons(q, level))) or "-"
        print(
            f"{label:44s} {q.size:6.0f} {q.confidence:6.1f} {q.brightness:6.1f} {q.sharpness:6.1f}"
            f" {q.roll:6.1f} {q.yaw:6.1f} {q.pitch:6.1f}  {declined}"
        )


if __name__ == "__main__":
    main()
