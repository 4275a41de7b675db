"""`make build`: the Lambda package zip and the dependencies layer zip, byte-for-byte reproducible.

build/lambda/stepspot.zip       functions/stepspot (the handlers and their logic) and stepspot/_build.json
                                (the deployment version, see stepspot.build_info)
build/lambda/dependencies.zip   layer: python/<what the handlers import>, wheels for the Lambda runtime
Each zip gets a `.sha256` beside it. Entries are sorted and carry a fixed timestamp and mode, so an
unchanged source gives an identical zip and hash, and Terraform does not redeploy.

The layer holds only the distributions the six handlers import (found statically by
scripts/package_imports.py: every import statement of every stepspot module they reach, lazy ones
included) and pip's resolution of their dependencies, at the versions pinned in constraints.txt. The
CLI's rich, Jinja2 and python-terraform stay out (python-terraform has no wheel at all). boto3 is in the
layer on purpose: the runtime's own copy changes under us, the pinned one is what the tests ran.
Wheels are for the functions' runtime and architecture (RUNTIME_PYTHON, LAMBDA_PLATFORM, checked
against terraform/modules/functions by tests/unit/test_packaging.py), whatever machine builds.
The layer is rebuilt only when what goes into it changes (the stamp beside it).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from package_imports import distributions, scan

from stepspot.build_info import BUILD_FILE, build_record, package_files

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "functions" / "stepspot"
OUT = ROOT / "build" / "lambda"
CONSTRAINTS = ROOT / "constraints.txt"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)
RUNTIME_PYTHON = "3.12"  # terraform/modules/functions: runtime python3.12
LAMBDA_PLATFORM = "manylinux2014_x86_64"  # terraform/modules/functions: architectures ["x86_64"]


def write_zip(target: Path, files: list[tuple[str, bytes | Path]]) -> str:
    """Write `files` (archive name, bytes or source file) deterministically; returns the hex sha256."""
    tmp = target.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, source in sorted(files, key=lambda item: item[0]):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, source if isinstance(source, bytes) else source.read_bytes())
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == digest:
        tmp.unlink()  # unchanged: keep the old file (and its mtime) as it is
    else:
        tmp.replace(target)
    (target.parent / f"{target.name}.sha256").write_text(f"{digest}  {target.name}\n")
    return digest


def tree(base: Path, prefix: str) -> list[tuple[str, bytes | Path]]:
    return [
        (f"{prefix}{path.relative_to(base).as_posix()}", path)
        for path in base.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    ]


def handler_modules() -> list[str]:
    """The Lambda entry modules: stepspot/handlers/*.py except the private helpers (_*.py)."""
    return [f"stepspot.handlers.{p.stem}" for p in sorted((PACKAGE_DIR / "handlers").glob("*.py")) if p.stem[0] != "_"]


def layer_requirements() -> list[str]:
    """The distributions the handlers import, each pinned in constraints.txt (pip applies the pins)."""
    names = distributions(scan(PACKAGE_DIR, handler_modules()).external)
    pinned = {
        line.split("==")[0].strip().lower().replace("_", "-")
        for line in CONSTRAINTS.read_text().splitlines()
        if "==" in line and not line.lstrip().startswith("#")
    }
    unpinned = [n for n in names if n.lower().replace("_", "-") not in pinned]
    if unpinned:
        raise SystemExit(
            f"The handlers import {', '.join(unpinned)}, which constraints.txt does not pin: add an exact pin "
            "(and to pyproject.toml's dependencies)."
        )
    return names


def pip_install_command(requirements: list[str], target: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--no-warn-conflicts",
        "--platform",
        LAMBDA_PLATFORM,
        "--python-version",
        RUNTIME_PYTHON,
        "--implementation",
        "cp",
        "--only-binary=:all:",
        "--constraint",
        str(CONSTRAINTS),
        "--target",
        str(target),
        *requirements,
    ]


def build_layer(requirements: list[str]) -> str:
    stamp = OUT / "dependencies.requirements"
    pins = hashlib.sha256(CONSTRAINTS.read_bytes()).hexdigest()
    wanted = "\n".join([*requirements, f"platform {LAMBDA_PLATFORM} python {RUNTIME_PYTHON}", f"pins {pins}"]) + "\n"
    target = OUT / "dependencies.zip"
    if target.exists() and stamp.exists() and stamp.read_text() == wanted:
        print(f"{target.relative_to(ROOT)}: dependencies unchanged")
        return (OUT / "dependencies.zip.sha256").read_text().split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "python"
        subprocess.run(pip_install_command(requirements, site), check=True)
        digest = write_zip(target, tree(site, "python/"))
    stamp.write_text(wanted)
    return digest


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, bytes | Path]] = [(f"stepspot/{name}", path) for name, path in package_files(PACKAGE_DIR)]
    files.append((f"stepspot/{BUILD_FILE}", build_record(PACKAGE_DIR)))
    package = write_zip(OUT / "stepspot.zip", files)
    print(f"build/lambda/stepspot.zip       sha256 {package}")
    requirements = layer_requirements()
    layer = build_layer(requirements)
    size = (OUT / "dependencies.zip").stat().st_size
    print(f"build/lambda/dependencies.zip   sha256 {layer}  {size / 2**20:.1f} MiB  ({', '.join(requirements)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
