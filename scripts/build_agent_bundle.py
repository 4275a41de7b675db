"""`make build`: build/stepspot-agent.pyz, the task runner as one file that any python3 >= 3.9 runs.

    python3 -I build/stepspot-agent.pyz run -- CMD ARGS...

A shiv zipapp (see docs/agent-bundle.md): the runner's console script (`stepspot-agent` in pyproject.toml,
wherever it lives), only the stepspot modules it reaches (scripts/package_imports.py) and the pure-Python
wheels pinned in scripts/agent-bundle-requirements.txt (boto3 and what it needs, for Python 3.9). botocore
reads its data files by path, so shiv unpacks the bundle once into $SHIV_ROOT (default ~/.shiv, or a
private directory under the temp dir when HOME is unset or not writable: our __main__.py decides before
shiv's bootstrap runs, and also refuses a python3 older than 3.9 with exit 78).

The bundle records the deployment version (stepspot/_build.json, see stepspot.build_info). Entries have a
fixed timestamp, so an unchanged input gives an identical file (and .sha256): Terraform does not re-upload.
Fast path: nothing is rebuilt while the inputs' digest (build/agent/bundle.stamp) is unchanged, which is
what local mode relies on when it calls this script before every run (`--quiet`).
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from package_imports import module_file, scan

from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION
from stepspot.build_info import BUILD_FILE, build_record, source_version

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "functions" / "stepspot"
REQUIREMENTS = Path(__file__).resolve().parent / "agent-bundle-requirements.txt"
WORK = ROOT / "build" / "agent"
TARGET = ROOT / "build" / "stepspot-agent.pyz"
CONSOLE_SCRIPT = "stepspot-agent"
MIN_PYTHON = (3, 9)
# SOURCE_DATE_EPOCH shiv uses with --reproducible (1980-01-01): every entry gets this timestamp.
FIXED_BUILT_AT = "1980-01-01 00:00:00"
# botocore ships every AWS service's model (~20 MB unpacked on every host); the runner creates S3 and
# DynamoDB clients, and credential providers may create STS/SSO ones. Everything else is left out.
BOTOCORE_SERVICES = ("dynamodb", "s3", "sso", "sso-oidc", "sts")

# Replaces shiv's two-line __main__.py. Plain syntax on purpose: an old python3 must get to the check.
MAIN_TEMPLATE = """\
# -*- coding: utf-8 -*-
# stepspot task runner bundle: check the interpreter and choose SHIV_ROOT, then shiv's bootstrap.
import os
import sys

if sys.version_info < {min_python!r}:
    sys.stderr.write(
        "stepspot: the image's python3 is %d.%d; the task runner needs python3 >= {min_text}: "
        "use an image with a newer python3\\n" % sys.version_info[:2]
    )
    sys.exit({exit_code})


def _private_root():
    # HOME unset or not writable (containers often run as a user without one): a directory of our own
    # under the temp dir, never one another user could have prepared.
    import tempfile

    path = os.path.join(tempfile.gettempdir(), "stepspot-shiv-%d" % os.getuid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return tempfile.mkdtemp(prefix="stepspot-shiv-")
    info = os.lstat(path)
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or not os.path.isdir(path) or os.path.islink(path):
        return tempfile.mkdtemp(prefix="stepspot-shiv-")
    return path


if not os.environ.get("SHIV_ROOT"):
    _home = os.path.expanduser("~")
    _shiv = os.path.join(_home, ".shiv")
    if _home == "~" or not os.access(_shiv if os.path.isdir(_shiv) else _home, os.W_OK):
        os.environ["SHIV_ROOT"] = _private_root()

import {module}

{module}.{fn}()
"""


def entry_point() -> str:
    """The runner's entry point as declared in pyproject.toml (``module:function``)."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    if CONSOLE_SCRIPT not in scripts:
        raise SystemExit(f"pyproject.toml declares no [project.scripts] {CONSOLE_SCRIPT}: the bundle needs its entry.")
    return str(scripts[CONSOLE_SCRIPT])


def requirements() -> list[str]:
    lines = (line.split("#")[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return [line for line in lines if line]


def inputs_digest(entry: str) -> str:
    """Everything the bundle is made of: stepspot's sources, pins, this script, shiv's version."""
    import shiv

    digest = hashlib.sha256()
    for part in (
        source_version(PACKAGE_DIR),
        entry,
        REQUIREMENTS.read_text(),
        Path(__file__).read_text(),
        (Path(__file__).parent / "package_imports.py").read_text(),
        getattr(shiv, "__version__", ""),
    ):
        digest.update(part.encode() + b"\0")
    return digest.hexdigest()


def vendor(pins: list[str]) -> Path:
    """The pinned wheels installed for Python 3.9, any platform, pure Python only; cached by the pins."""
    key = hashlib.sha256(("\n".join(pins) + "\n" + ",".join(BOTOCORE_SERVICES)).encode()).hexdigest()[:16]
    site = WORK / f"vendor-{key}"
    complete = WORK / f"vendor-{key}.complete"
    if complete.exists():
        return site
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            ".".join(map(str, MIN_PYTHON)),
            "--implementation",
            "py",
            "--abi",
            "none",
            "--platform",
            "any",
            "--target",
            str(site),
            *pins,
        ],
        check=True,
    )
    data = site / "botocore" / "data"
    for service in data.iterdir():
        if service.is_dir() and service.name not in BOTOCORE_SERVICES:
            shutil.rmtree(service)
    shutil.rmtree(site / "bin", ignore_errors=True)
    complete.write_text("\n".join(pins) + "\n")
    return site


def stage_package(entry_module: str, vendored: Path, stage: Path) -> None:
    """Copy the stepspot modules the runner reaches, and the build record, into ``stage``."""
    needs = scan(PACKAGE_DIR, [entry_module])
    missing = sorted(name for name in needs.external if not (vendored / name).exists())
    if missing:
        raise SystemExit(
            f"The task runner imports {', '.join(missing)}, which the bundle does not vendor: keep the runner to "
            f"the standard library and boto3, or pin it in {REQUIREMENTS.relative_to(ROOT)}."
        )
    for module in sorted(needs.modules):
        source = module_file(PACKAGE_DIR, module)
        assert source is not None
        target = stage / "stepspot" / source.relative_to(PACKAGE_DIR)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    (stage / "stepspot" / BUILD_FILE).write_bytes(build_record(PACKAGE_DIR))


def write_bundle(sources: list[Path], entry: str, target: Path) -> None:
    from shiv import builder
    from shiv.bootstrap.environment import Environment

    env = Environment(
        built_at=FIXED_BUILT_AT,
        entry_point=entry,
        shiv_version=getattr(__import__("shiv"), "__version__", ""),
        reproducible=True,
        # Python writes the .pyc of what it imports on first use; compiling all of botocore at unpack
        # would cost every fresh container a few seconds.
        compile_pyc=False,
    )
    main = MAIN_TEMPLATE.format(
        min_python=MIN_PYTHON,
        min_text=".".join(map(str, MIN_PYTHON)),
        exit_code=EXIT_MISCONFIGURATION,
        module="{module}",
        fn="{fn}",
    )
    if not hasattr(builder, "MAIN_TEMPLATE"):
        raise SystemExit("shiv's builder no longer has MAIN_TEMPLATE: check the pinned shiv version.")
    builder.MAIN_TEMPLATE = main  # shiv formats it with the bootstrap's module and function
    builder.create_archive(
        sources, target=target, interpreter="/usr/bin/env python3", main="_bootstrap:bootstrap", env=env
    )


def build(quiet: bool = False) -> Path:
    """Build under a lock: local runs and `make build` may start together and share build/agent."""
    WORK.mkdir(parents=True, exist_ok=True)
    with (WORK / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build(quiet)


def _build(quiet: bool) -> Path:
    entry = entry_point()
    digest = inputs_digest(entry)
    stamp = WORK / "bundle.stamp"
    if TARGET.exists() and stamp.exists() and stamp.read_text() == digest + "\n":
        if not quiet:
            print(f"{TARGET.relative_to(ROOT)}: up to date")
        return TARGET
    vendored = vendor(requirements())
    with tempfile.TemporaryDirectory(dir=WORK) as tmp:
        stage = Path(tmp) / "stage"
        stage_package(entry.partition(":")[0], vendored, stage)
        built = Path(tmp) / TARGET.name
        # Shiv stores each file's permission bits: make them the same on every machine.
        for tree in (vendored, stage):
            for path in tree.rglob("*"):
                if path.is_file():
                    path.chmod(0o644)
        write_bundle([vendored, stage], entry, built)
        sha = hashlib.sha256(built.read_bytes()).hexdigest()
        if not (TARGET.exists() and hashlib.sha256(TARGET.read_bytes()).hexdigest() == sha):
            os.replace(built, TARGET)  # atomic: a concurrent local run never sees half a bundle
    (TARGET.parent / f"{TARGET.name}.sha256").write_text(f"{sha}  {TARGET.name}\n")
    stamp.write_text(digest + "\n")
    print(f"{TARGET.relative_to(ROOT)}  sha256 {sha}  {TARGET.stat().st_size / 2**20:.1f} MiB")
    return TARGET


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="print nothing when the bundle is up to date")
    build(quiet=parser.parse_args().quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
