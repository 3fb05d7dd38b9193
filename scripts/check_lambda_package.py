"""Checks what `chalice package` made for Terraform (make package-terraform
runs it): every Lambda function on the expected runtime, and the deployment
zip carrying Pillow and pillow-heif as manylinux x86-64 builds for that
runtime's Python and glibc, and never dlib or numpy.

    python scripts/check_lambda_package.py artifacts/terraform-dev --runtime python3.13
"""

import argparse
import json
import re
import sys
import zipfile
from pathlib import Path

# Amazon Linux 2023 (the python3.12+ runtimes) has glibc 2.34.
RUNTIME_GLIBC = {"python3.12": (2, 34), "python3.13": (2, 34), "python3.14": (2, 34)}
NEEDED = ("pillow", "pillow_heif")  # distributions, as their .dist-info folders name them
NEVER = ("dlib", "numpy")
_X86_64 = 0x3E  # ELF e_machine


def check_package(package_dir: Path, runtime: str) -> tuple[list[str], list[str]]:
    """(problems, findings): nothing in problems means the package is right."""
    problems, findings = [], []
    terraform = json.loads((package_dir / "chalice.tf.json").read_text())
    functions = terraform["resource"]["aws_lambda_function"]
    for name, function in sorted(functions.items()):
        findings.append(f"function {name}: {function.get('runtime')}")
        if function.get("runtime") != runtime:
            problems.append(f"function {name} runs {function.get('runtime')}, not {runtime}")
    zips = {Path(f["filename"].replace("${path.module}", str(package_dir))) for f in functions.values()}
    for path in sorted(zips):
        with zipfile.ZipFile(path) as archive:
            problems += _check_zip(archive, runtime, findings)
    return problems, findings


def _check_zip(archive: zipfile.ZipFile, runtime: str, findings: list[str]) -> list[str]:
    problems = []
    names = archive.namelist()
    abi = "cpython-" + runtime.removeprefix("python").replace(".", "")
    glibc = RUNTIME_GLIBC.get(runtime, (2, 17))
    for distribution in NEEDED:
        dist_info = _dist_info(names, distribution)
        if dist_info is None:
            problems.append(f"{archive.filename}: {distribution} is missing")
            continue
        record = archive.read(f"{dist_info}/RECORD").decode().splitlines()
        libraries = [line.split(",")[0] for line in record if re.search(r"\.so($|\.)", line.split(",")[0])]
        extensions = [name for name in libraries if "cpython-" in name]
        if not extensions or any(abi not in name for name in extensions):
            problems.append(f"{archive.filename}: {distribution} has no extension built for {abi}: {extensions[:3]}")
        not_x86 = [name for name in libraries if not _is_x86_64_elf(archive.read(name)[:20])]
        if not_x86:
            problems.append(
                f"{archive.filename}: {distribution} has libraries that are not x86-64 Linux: {not_x86[:3]}"
            )
        tags = [
            line.split(":", 1)[1].strip()
            for line in archive.read(f"{dist_info}/WHEEL").decode().splitlines()
            if line.startswith("Tag:")
        ]
        fitting = [tag for tag in tags if _fits(tag, glibc)]
        if not fitting:
            problems.append(
                f"{archive.filename}: {distribution} is not a manylinux x86_64 wheel for glibc "
                f"{glibc[0]}.{glibc[1]} (tags: {tags})"
            )
        findings.append(f"{dist_info}: {len(libraries)} x86-64 shared libraries, {', '.join(fitting)}")
    heavy = sorted({name.split("/")[0] for name in names if name.split("/")[0].lower().startswith(NEVER)})
    if heavy:
        problems.append(f"{archive.filename}: carries {heavy}, which the Lambda package must never hold")
    return problems


def _dist_info(names: list[str], distribution: str) -> str | None:
    pattern = re.compile(rf"({re.escape(distribution)}-[^/-]+\.dist-info)/RECORD", re.IGNORECASE)
    return next((match.group(1) for name in names if (match := pattern.fullmatch(name))), None)


def _fits(tag: str, glibc: tuple[int, int]) -> bool:
    match = re.search(r"manylinux_(\d+)_(\d+)_x86_64|manylinux2014_x86_64", tag)
    if not match:
        return False
    return match.group(1) is None or (int(match.group(1)), int(match.group(2))) <= glibc


def _is_x86_64_elf(header: bytes) -> bool:
    return header[:4] == b"\x7fELF" and header[4] == 2 and int.from_bytes(header[18:20], "little") == _X86_64


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("package_dir", type=Path)
    parser.add_argument("--runtime", default="python3.13")
    args = parser.parse_args()
    problems, findings = check_package(args.package_dir, args.runtime)
    for line in findings:
        print(f"Lambda package: {line}")
    for line in problems:
        print(f"Lambda package is wrong: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
