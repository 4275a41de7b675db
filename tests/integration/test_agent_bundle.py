"""The task runner bundle (build/stepspot-agent.pyz) as AWS runs it: `env -i python3 -I stepspot-agent.pyz`.

The interpreters have no packages of their own (checked): boto3 and the stepspot modules come from the
bundle alone. The checkpoint scenarios of test_agent.py run again through it (Spot notice then resume,
hard kill then resume, a corrupt checkpoint skipped on restore), with the system's python3 and, where the
machine has one (pyenv), with Python 3.9, the oldest the bundle supports.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from checkpoint_support import EXAMPLE_PROGRAM, REPO, FakeImds, Store
from interpreters import find_python
from test_agent import Lines, saved_step

from stepspot.agent_exit_codes import EXIT_MISCONFIGURATION, EXIT_SPOT_NOTICE
from stepspot.build_info import VERSION_ENV, deployment_version

pytest_plugins = ("checkpoint_support",)  # fixtures: moto_endpoint, store, imds

BUILD_SCRIPT = REPO / "scripts" / "build_agent_bundle.py"
SYSTEM_PYTHON = "/usr/bin/python3"


def _clean(python: str | None, why_missing: str) -> str:
    if python is None or not Path(python).exists():
        pytest.skip(why_missing)
    probe = subprocess.run([python, "-I", "-c", "import boto3"], capture_output=True, env={})
    assert probe.returncode != 0, f"{python} has boto3 installed: the bundle test needs an interpreter without it"
    return python


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The bundle `make build` made (rebuilt here only if the sources changed since)."""
    subprocess.run([sys.executable, str(BUILD_SCRIPT), "--quiet"], check=True, cwd=REPO)
    return REPO / "build" / "stepspot-agent.pyz"


@pytest.fixture(scope="module")
def reference_checksum(tmp_path_factory: pytest.TempPathFactory) -> float:
    """The checksum of an uninterrupted run, without the runner."""
    directory = tmp_path_factory.mktemp("reference")
    env = dict(os.environ, STEPSPOT_CHECKPOINT_DIR=str(directory / "ckpt"))
    command = [sys.executable, str(EXAMPLE_PROGRAM), "--steps", "300", "--cells", "60"]
    subprocess.run([*command, "--output", str(directory / "r.json")], env=env, check=True, capture_output=True)
    return float(json.loads((directory / "r.json").read_text())["checksum"])


@pytest.fixture(scope="session")
def shiv_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shiv")


@pytest.fixture(params=["system", "3.9"])
def python(request: pytest.FixtureRequest) -> str:
    if request.param == "system":
        return _clean(SYSTEM_PYTHON, f"{SYSTEM_PYTHON} does not exist on this machine")
    return _clean(find_python("3.9"), "no Python 3.9 on this machine (pyenv versions/3.9.*)")


class Bundle:
    """Starts the bundle under ``env -i``: only the variables a job gets, no PATH but the system's."""

    def __init__(self, python: str, bundle: Path, shiv_root: Path) -> None:
        self.python, self.bundle, self.shiv_root = python, bundle, shiv_root

    def env(self, store: Store, directory: Path, **extra: str) -> dict[str, str]:
        wanted = {k: v for k, v in store.env(directory).items() if k.startswith(("AWS_", "STEPSPOT_"))}
        return {**wanted, "PATH": "/usr/bin:/bin", "SHIV_ROOT": str(self.shiv_root), **extra}

    def program(self, *args: str) -> list[str]:
        program = [str(EXAMPLE_PROGRAM), "--steps", "300", "--cells", "60", "--checkpoint-every", "25"]
        return [self.python, *program, "--step-delay", "0.01", *args]

    def start(self, args: list[str], env: dict[str, str]) -> Lines:
        command = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), self.python, "-I", str(self.bundle), *args]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        return Lines(process)

    def run(self, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        command = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), self.python, "-I", str(self.bundle), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def runner(python: str, bundle: Path, shiv_root: Path) -> Bundle:
    return Bundle(python, bundle, shiv_root)


def test_every_module_the_bundle_carries_imports_with_nothing_else(python: str, bundle: Path, tmp_path: Path) -> None:
    # Runtime syntax and stdlib names newer than the interpreter (datetime.UTC, enum.StrEnum, ...) fail here.
    with zipfile.ZipFile(bundle) as archive:
        names = [n for n in archive.namelist() if n.startswith("site-packages/stepspot/") and n.endswith(".py")]
        archive.extractall(tmp_path, members=[n for n in archive.namelist() if n.startswith("site-packages/")])
    modules = sorted(n[len("site-packages/") : -len(".py")].replace("/", ".").removesuffix(".__init__") for n in names)
    assert "stepspot.agent" in modules or "stepspot.agent.cli" in modules
    script = "import importlib, sys; sys.path[:0] = [sys.argv[1]]; [importlib.import_module(m) for m in sys.argv[2:]]"
    result = subprocess.run(
        [python, "-I", "-S", "-c", script, str(tmp_path / "site-packages"), *modules, "boto3", "botocore.session"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr


def test_spot_notice_then_resume_through_the_bundle(
    runner: Bundle, store: Store, imds: FakeImds, tmp_path: Path, reference_checksum: float
) -> None:
    # Given the bundle running the program on "instance 1", polling the fake IMDS
    env = runner.env(store, tmp_path / "instance-1", STEPSPOT_IMDS_ENDPOINT=imds.endpoint)
    args = ["run", "--imds-poll", "0.1", "--interval", "60", "--grace", "10", "--reclaim-wait", "2"]
    agent = runner.start([*args, "--", *runner.program()], env)
    agent.wait_for("no checkpoint to restore")
    agent.wait_for("step 100 written")
    # When Spot posts the interruption notice
    imds.post_notice()
    stopped_at = int(agent.wait_for("stopping at step").split("step ")[1].split()[0])
    agent.wait_for("notice handled in")
    # Then the checkpoint is uploaded and the runner exits as stopped on a notice
    assert agent.finish() == EXIT_SPOT_NOTICE
    sequence, step = saved_step(store)
    assert step == stopped_at
    # And a new instance resumes from it and ends with the uninterrupted result
    rerun = runner.start(
        ["run", "--interval", "60", "--", *runner.program("--output", str(tmp_path / "result.json"))],
        runner.env(store, tmp_path / "instance-2"),
    )
    assert f"restored checkpoint {sequence}" in rerun.wait_for("restored checkpoint")
    rerun.wait_for(f"starting at step {stopped_at} of 300")
    assert rerun.finish() == 0
    assert json.loads((tmp_path / "result.json").read_text())["checksum"] == reference_checksum


@pytest.mark.parametrize("python", ["system"], indirect=True)
def test_periodic_checkpoints_survive_a_hard_kill_through_the_bundle(
    runner: Bundle, store: Store, tmp_path: Path
) -> None:
    agent = runner.start(["run", "--interval", "0.3", "--", *runner.program()], runner.env(store, tmp_path / "one"))
    agent.wait_for("step 150 written")
    agent.wait_for("checkpoint ")
    agent.process.kill()  # `env` exec'd the interpreter: this is the runner itself
    agent.finish()
    _, step = saved_step(store)
    assert step >= 25
    rerun = runner.start(["run", "--interval", "60", "--", *runner.program()], runner.env(store, tmp_path / "two"))
    rerun.wait_for(f"starting at step {step} of 300")
    assert rerun.finish() == 0


def test_restore_skips_a_corrupt_checkpoint_through_the_bundle(runner: Bundle, store: Store, tmp_path: Path) -> None:
    # Given two checkpoints saved by the bundle, the newer one's file corrupted in S3
    source = tmp_path / "src"
    source.mkdir()
    for step in (1, 2):
        (source / "state.json").write_text(json.dumps({"step": step}))
        saved = runner.run(["save"], runner.env(store, source))
        assert saved.returncode == 0, saved.stderr
    newest = json.loads(saved.stdout)
    manifest: dict[str, Any] = json.loads(
        store.s3.get_object(Bucket=store.bucket, Key=newest["uri"].split("/", 3)[3])["Body"].read()
    )
    key = next(f["key"] for f in manifest["files"] if f["path"] == "state.json")
    store.s3.put_object(Bucket=store.bucket, Key=key, Body=b'{"step": 9}')  # same size, other bytes
    # When a new instance restores
    restored = runner.run(["restore"], runner.env(store, tmp_path / "dst"))
    # Then the corrupt one is skipped and the previous one restored
    assert restored.returncode == 0, restored.stderr
    document = json.loads(restored.stdout)
    assert document["sequence"] == 1
    assert [s["sequence"] for s in document["skipped"]] == [2]
    assert json.loads((tmp_path / "dst" / "state.json").read_text()) == {"step": 1}


@pytest.mark.parametrize("python", ["system"], indirect=True)
def test_a_runner_of_another_build_is_refused_as_misconfiguration(runner: Bundle, store: Store, tmp_path: Path) -> None:
    env = runner.env(store, tmp_path / "d", **{VERSION_ENV: "0.0.1+000000000000"})
    result = runner.run(["run", "--", "true"], env)
    assert result.returncode == EXIT_MISCONFIGURATION
    assert result.stderr.strip() == (
        f"stepspot-agent: error: This task runner is version {deployment_version()} but the deployment's Lambdas "
        f"are version 0.0.1+000000000000 ({VERSION_ENV}): the bundle on the host comes from another `make build`; "
        "deploy again (`make deploy`) so Terraform ships the bundle built together with the Lambdas."
    )
    # The same build is accepted
    same = runner.run(["run", "--no-imds", "--", "true"], {**env, VERSION_ENV: deployment_version()})
    assert same.returncode == 0, same.stderr


@pytest.mark.parametrize("python", ["system"], indirect=True)
@pytest.mark.parametrize("home", ["unset", "missing"])
def test_without_a_usable_home_the_bundle_unpacks_into_a_private_temp_directory(
    python: str, bundle: Path, home: str
) -> None:
    # A container may run as a user with no HOME (and no passwd entry) or a HOME it cannot write.
    scratch = Path(tempfile.mkdtemp(prefix="stepspot-home-test-"))  # reachable by any user, unlike tmp_path
    try:
        scratch.chmod(0o777)
        env = {"PATH": "/usr/bin:/bin", "TMPDIR": str(scratch)}
        command = [python, "-I", str(bundle), "--help"]
        uid = os.getuid()
        if home == "missing":
            env["HOME"] = str(scratch / "no-such-home")
        elif uid == 0:
            # root's passwd entry gives a home even without HOME: run as a user that has none
            if not shutil.which("setpriv"):
                pytest.skip("setpriv is needed to run the bundle as a user without a home")
            uid = 54321
            command = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *command]
        result = subprocess.run(
            ["env", "-i", *(f"{k}={v}" for k, v in env.items()), *command], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        assert "Checkpoint and data staging agent for stepspot jobs." in result.stdout
        private = scratch / f"stepspot-shiv-{uid}"
        assert private.is_dir() and stat.S_IMODE(private.stat().st_mode) == 0o700
        assert any(private.glob("stepspot-agent.pyz_*/site-packages/stepspot/agent*"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_a_python_older_than_3_9_is_refused_with_what_the_image_needs(bundle: Path) -> None:
    old = find_python("3.8") or find_python("3.6")
    if old is None:
        pytest.skip("no Python older than 3.9 on this machine (pyenv versions/3.8.* or 3.6.*)")
    result = subprocess.run(
        ["env", "-i", "PATH=/usr/bin:/bin", old, "-I", str(bundle), "--help"], capture_output=True, text=True
    )
    assert result.returncode == EXIT_MISCONFIGURATION
    assert "the task runner needs python3 >= 3.9: use an image with a newer python3" in result.stderr


@pytest.mark.parametrize("python", ["system"], indirect=True)
def test_help_starts_fast_enough(runner: Bundle) -> None:
    runner.run(["--help"], {"PATH": "/usr/bin:/bin", "SHIV_ROOT": str(runner.shiv_root)})  # unpacked once
    started = time.monotonic()
    result = runner.run(["--help"], {"PATH": "/usr/bin:/bin", "SHIV_ROOT": str(runner.shiv_root)})
    assert result.returncode == 0
    assert time.monotonic() - started < 2.0  # generous for a shared CI machine; bench/ measures the real figure
