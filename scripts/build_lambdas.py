"""`make build`: the Lambda package zip and the dependencies layer zip, byte-for-byte reproducible.

build/lambda/stepspot.zip       functions/stepspot (the handlers and their logic)
build/lambda/dependencies.zip   layer: python/<runtime dependencies>, manylinux wheels for python3.12
Each zip gets a `.sha256` beside it. Entries are sorted and carry a fixed timestamp and mode, so an
unchanged source gives an identical zip and hash, and Terraform does not redeploy.
The layer is rebuilt only when the pinned runtime dependencies (pyproject.toml) change.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "build" / "lambda"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
PYTHON_VERSION = "3.12"
PLATFORM = "manylinux2014_x86_64"


def write_zip(target: Path, files: list[tuple[str, Path]]) -> str:
    """Write `files` (archive name, source) deterministically; returns the hex sha256."""
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, source in sorted(files):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source.read_bytes())
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
        tmp.unlink()  # unchanged: keep the old file (and its mtime) as it is
    else:
        tmp.replace(target)
    (target.parent / f"{target.name}.sha256").write_text(f"{digest}  {target.name}\n")
    return digest


def tree(base: Path, prefix: str) -> list[tuple[str, Path]]:
    return [
        (f"{prefix}{path.relative_to(base).as_posix()}", path)
        for path in base.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def runtime_requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return sorted(tomllib.load(handle)["project"]["dependencies"])


def build_layer(requirements: list[str]) -> str:
    stamp = OUT / "dependencies.requirements"
    wanted = "\n".join(requirements) + "\n"
    target = OUT / "dependencies.zip"
    if target.exists() and stamp.exists() and stamp.read_text() == wanted:
        print(f"{target.relative_to(ROOT)}: dependencies unchanged")
        return (OUT / "dependencies.zip.sha256").read_text().split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "python"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                "--no-warn-conflicts",
                "--platform",
                PLATFORM,
                "--python-version",
                PYTHON_VERSION,
                "--implementation",
                "cp",
                "--only-binary=:all:",
                "--target",
                str(site),
                *requirements,
            ],
            check=True,
        )
        digest = write_zip(target, tree(site, "python/"))
    stamp.write_text(wanted)
    return digest


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    package = write_zip(OUT / "stepspot.zip", tree(ROOT / "functions" / "stepspot", "stepspot/"))
    print(f"build/lambda/stepspot.zip       sha256 {package}")
    layer = build_layer(runtime_requirements())
    print(f"build/lambda/dependencies.zip   sha256 {layer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
