"""What decoding a hostile photo costs: peak memory and time of each step a
photo goes through (issue 22, rows 4 and 5), for decompression bombs under
the 50 MP limit and, for comparison, a real photo.

    .venv/bin/python scripts/bench_decoding.py [--timeout 150]

Each case runs in a fresh process (its peak RSS is its own), in two steps:
- `check`: what the server's request thread does (images.prepare_upload:
  validate, convert WebP/AVIF/HEIC to JPEG), on upload and on search alike;
- `analyse`: what an analysis worker does with the stored photo before
  detection (pixels.decode_rgb at the engine's working size).
`six at once`: six request threads checking the WebP (or AVIF) bomb together.
Memory is the process's peak RSS (VmHWM) above what it held after its
imports. Linux only (/proc)."""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.bombs import avif_bomb, many_scans_jpeg, png16_bomb, webp_bomb  # noqa: E402
from tests.support.photos import photo  # noqa: E402

CASES = {
    "webp 7000x7000 RGBA": webp_bomb,
    "avif 7000x7000": avif_bomb,
    "png 7000x7000 RGBA 16-bit": png16_bomb,
    "png 6000x6000 RGBA 8-bit": lambda: png16_bomb(6000, 6000, bits=8),
    "jpeg 8000x6000, 7000 scans": lambda: many_scans_jpeg(7000, 8000, 6000),
    "jpeg, a real photo": lambda: photo("Keanu-Reeves.jpg"),
}

CHILD = """
import json, sys, threading, time
from pathlib import Path
from chalicelib.core import images, pixels
from chalicelib.embedded.analysis import WORK_PIXELS
data = Path({path!r}).read_bytes()
def status_kb(field):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(field))
base = status_kb("VmRSS:")
started = time.perf_counter()
outcome = "ok"
def check():
    return images.prepare_upload(data).data
try:
    if "{step}" == "check":
        check()
    elif "{step}" == "analyse":
        pixels.decode_rgb(check(), WORK_PIXELS)
    else:
        errors = []
        def one():
            try:
                check()
            except Exception as e:
                errors.append(type(e).__name__)
        threads = [threading.Thread(target=one) for _ in range(6)]
        [t.start() for t in threads]; [t.join() for t in threads]
        outcome = ", ".join(sorted(set(errors))) or "ok"
except Exception as e:
    outcome = f"{{type(e).__name__}} {{getattr(e, 'status', '')}}".strip()
peak = status_kb("VmHWM:")  # not ru_maxrss: a child's starts from its parent's
seconds = round(time.perf_counter() - started, 2)
print(json.dumps({{"bytes": len(data), "peakMB": round((peak - base) / 1024), "seconds": seconds, "outcome": outcome}}))
"""


def run(path: Path, step: str, timeout: float) -> dict:
    code = CHILD.format(path=str(path), step=step)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"still decoding after {timeout:g} s (stopped)"}
    if done.returncode != 0:
        return {"outcome": f"crashed: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds a case may take before it is stopped")
    args = parser.parse_args()
    print(f"{'case':30s} {'step':12s} {'bytes':>9s} {'peak MB':>8s} {'seconds':>8s}  outcome")
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench-decoding-"))
    for i, (name, make) in enumerate(CASES.items()):
        path = folder / f"case-{i}"
        path.write_bytes(make())  # made here: the case's own process only reads it
        steps = ("check", "analyse", "six at once") if name.startswith(("webp", "avif")) else ("check", "analyse")
        for step in steps:
            r = run(path, step, args.timeout)
            print(
                f"{name:30s} {step:12s} {r.get('bytes', ''):>9} {r.get('peakMB', ''):>8} "
                f"{r.get('seconds', ''):>8}  {r['outcome']}",
                flush=True,
            )
    print(f"total {time.perf_counter() - started:.0f} s")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


if __name__ == "__main__":
    main()
