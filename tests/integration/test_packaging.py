"""`make build`'s Lambda artefacts: the layer holds what the handlers import and nothing of the CLI's.

The zips are the ones `make build` wrote (the script is run again here; it returns at once when nothing
changed). Every module the handlers reach, and every third-party name they import, is imported from the
unzipped stepspot.zip and layer alone, by the Lambda runtime's Python (3.12) in isolated mode without
site-packages, so a handler import that the layer does not satisfy fails here, not at a cold start.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from interpreters import find_python

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
OUT = REPO / "build" / "lambda"
sys.path.insert(0, str(SCRIPTS))

import build_lambdas  # noqa: E402
from package_imports import scan  # noqa: E402

from stepspot.build_info import BUILD_FILE, source_version  # noqa: E402

CLI_ONLY = ("rich", "jinja2", "python_terraform", "markupsafe", "pygments")


@pytest.fixture(scope="module")
def built() -> Path:
    subprocess.run([sys.executable, str(SCRIPTS / "build_lambdas.py")], check=True, cwd=REPO, capture_output=True)
    return OUT


def _top_level(layer: zipfile.ZipFile) -> set[str]:
    return {name.split("/")[1].lower() for name in layer.namelist() if name.startswith("python/")}


def test_the_layer_has_no_cli_dependencies(built: Path) -> None:
    with zipfile.ZipFile(built / "dependencies.zip") as layer:
        top = _top_level(layer)
    present = sorted(t for t in top for name in CLI_ONLY if t == name or t.startswith(f"{name}-"))
    assert present == []
    assert {"boto3", "pydantic", "aws_lambda_powertools", "yaml"} <= top


def test_every_handler_import_is_satisfied_by_the_zips_alone(built: Path, tmp_path: Path) -> None:
    python = find_python(build_lambdas.RUNTIME_PYTHON)
    if python is None:
        pytest.skip(f"no Python {build_lambdas.RUNTIME_PYTHON} here to load the layer's compiled wheels")
    for name in ("stepspot.zip", "dependencies.zip"):
        with zipfile.ZipFile(built / name) as archive:
            archive.extractall(tmp_path / "opt")
    needs = scan(build_lambdas.PACKAGE_DIR, build_lambdas.handler_modules())
    modules = sorted(needs.modules) + sorted(needs.external)
    # Lambda puts the function code and /opt/python on sys.path; -I -S: nothing else.
    script = (
        "import importlib, json, sys; sys.path[:0] = sys.argv[1:3]; "
        "[importlib.import_module(m) for m in sys.argv[3:]]; "
        "print(json.dumps(sorted({n.split('.')[0] for n, m in list(sys.modules.items()) "
        "if (getattr(m, '__file__', None) or '').startswith(sys.argv[1])})))"
    )
    result = subprocess.run(
        [python, "-I", "-S", "-c", script, str(tmp_path / "opt"), str(tmp_path / "opt" / "python"), *modules],
        capture_output=True,
        text=True,
        env={"PATH": os.defpath},
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))  # what came from the zips
    assert "stepspot" in loaded and {"pydantic", "boto3", "aws_lambda_powertools"} <= loaded
    assert not loaded & set(CLI_ONLY)


def test_the_deployment_version_starts_with_the_declared_package_version() -> None:
    import tomllib

    import stepspot

    with (REPO / "pyproject.toml").open("rb") as handle:
        declared = tomllib.load(handle)["project"]["version"]
    assert stepspot.__version__ == declared  # build_info reads stepspot.__version__
    assert source_version(build_lambdas.PACKAGE_DIR).startswith(f"{declared}+")


def test_the_package_zip_records_the_deployment_version(built: Path) -> None:
    with zipfile.ZipFile(built / "stepspot.zip") as archive:
        record = json.loads(archive.read(f"stepspot/{BUILD_FILE}"))
    assert record == {"version": source_version(build_lambdas.PACKAGE_DIR)}


def test_the_wheels_are_for_the_runtime_and_architecture_terraform_deploys() -> None:
    module = (REPO / "terraform" / "modules" / "functions" / "main.tf").read_text()
    variables = (REPO / "terraform" / "modules" / "functions" / "variables.tf").read_text()
    runtime = re.search(r'variable "runtime" \{[^}]*default\s*=\s*"python(\d+\.\d+)"', variables, re.S)
    assert runtime is not None and runtime.group(1) == build_lambdas.RUNTIME_PYTHON
    architectures = set(re.findall(r'architectures\s*=\s*\["([^"]+)"\]', module))
    assert architectures == {build_lambdas.LAMBDA_PLATFORM.split("_", 1)[1]}  # manylinux2014_x86_64 -> x86_64


def test_the_build_is_reproducible(built: Path) -> None:
    before = {name: (built / name).read_bytes() for name in ("stepspot.zip", "dependencies.zip")}
    subprocess.run([sys.executable, str(SCRIPTS / "build_lambdas.py")], check=True, cwd=REPO, capture_output=True)
    for name, content in before.items():
        assert (built / name).read_bytes() == content
        digest = (built / f"{name}.sha256").read_text().split()[0]
        assert hashlib.sha256(content).hexdigest() == digest
