"""The deployment's version: the package version plus a digest of the package's own files.

Standard library only and importable by Python 3.9 (the task runner bundle includes it). ``make build``
writes the version into each artefact (``stepspot/_build.json`` in the Lambda zip and in
``stepspot-agent.pyz``); a source checkout computes it from its files, so the local Lambdas and a bundle
built from the same tree agree. The attempt manager passes the Lambdas' version to every job as
``STEPSPOT_VERSION`` and the task runner refuses a different one (exit ``EXIT_MISCONFIGURATION``): a
bundle left on a host by another ``make build`` would otherwise speak an older protocol to newer Lambdas.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from stepspot import __version__

BUILD_FILE = "_build.json"  # written into the artefacts by the build scripts, never into the source tree
VERSION_ENV = "STEPSPOT_VERSION"
PACKAGE_DIR = Path(__file__).resolve().parent


def package_files(package_dir: Path) -> list[tuple[str, Path]]:
    """The package's files as (path relative to the package, file), sorted; what the Lambda zip holds."""
    files = [
        (path.relative_to(package_dir).as_posix(), path)
        for path in package_dir.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc" and path.name != BUILD_FILE
    ]
    return sorted(files)


def source_version(package_dir: Path) -> str:
    """``<package version>+<first 12 hex of the sha256 over every file's name and bytes>``."""
    digest = hashlib.sha256()
    for name, path in package_files(package_dir):
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return f"{__version__}+{digest.hexdigest()[:12]}"


def build_record(package_dir: Path) -> bytes:
    """The ``_build.json`` a build writes next to the package's modules."""
    return (json.dumps({"version": source_version(package_dir)}, sort_keys=True) + "\n").encode()


@functools.cache
def deployment_version() -> str:
    """This installation's version: the one recorded by the build, else computed from the source tree."""
    built = PACKAGE_DIR / BUILD_FILE
    if built.is_file():
        return str(json.loads(built.read_text())["version"])
    return source_version(PACKAGE_DIR)


def version_mismatch(environ: Mapping[str, str]) -> str | None:
    """The sentence refusing a job whose Lambdas (``STEPSPOT_VERSION``) are not this build, or None."""
    expected = environ.get(VERSION_ENV, "")
    mine = deployment_version()
    if not expected or expected == mine:
        return None
    return (
        f"This task runner is version {mine} but the deployment's Lambdas are version {expected} "
        f"({VERSION_ENV}): the bundle on the host comes from another `make build`; deploy again "
        "(`make deploy`) so Terraform ships the bundle built together with the Lambdas."
    )
