"""The launch template's user data (modules/compute/user_data.tftpl), rendered by Terraform and run.

The script runs under bash with stand-ins for `aws` (copies a local file, as `aws s3 cp` would),
`logger`, `dnf` and `sleep` on PATH, and the host directory moved into a temporary directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from email import message_from_string
from pathlib import Path

import pytest
from tf_toolchain import TERRAFORM_DIR, Runner

TEMPLATE = TERRAFORM_DIR / "modules" / "compute" / "user_data.tftpl"
KEY = "stepspot/agent/HASH/stepspot-agent.pyz"


def _render(terraform: Runner, tmp_path: Path, host_dir: Path, sha256: str) -> str:
    config = tmp_path / "render"
    config.mkdir()
    values = {
        "region": "eu-west-1",
        "bucket": "bucket",
        "key": KEY,
        "sha256": sha256,
        "host_dir": str(host_dir),
        "efa": False,
        "fsx_dns_name": "",
        "fsx_mount_name": "",
        "fsx_mount_path": "",
    }
    (config / "main.tf.json").write_text(
        json.dumps(
            {
                "output": {
                    "user_data": {"value": f"${{templatefile({json.dumps(str(TEMPLATE))}, {json.dumps(values)})}}"}
                }
            }
        )
    )
    assert terraform("apply", "-auto-approve", "-no-color", cwd=config).code == 0
    result = terraform("output", "-raw", "user_data", cwd=config)
    assert result.code == 0, result.output
    return result.output[result.output.index("MIME-Version") :]


def _run(script: str, tmp_path: Path, bundle: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {
        # aws s3 cp --only-show-errors --region R s3://... DEST
        "aws": f'#!/bin/sh\necho "$*" >> "{tmp_path}/aws.calls"\ncp "{bundle}" "$7"\n',
        "logger": "#!/bin/sh\nexit 0\n",
        "dnf": "#!/bin/sh\nexit 0\n",
        "sleep": "#!/bin/sh\nexit 0\n",
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    path = tmp_path / "user_data.sh"
    path.write_text(script)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(["bash", str(path)], env=env, capture_output=True, text=True, timeout=60, check=False)


def _script(user_data: str) -> str:
    # Batch merges MIME multipart user data: the shell script is one part of it.
    message = message_from_string(user_data)
    assert message.is_multipart()
    parts = [p for p in message.walk() if p.get_content_type() == "text/x-shellscript"]
    assert len(parts) == 1
    return str(parts[0].get_payload())


@pytest.mark.skipif(os.name != "posix", reason="bash")
def test_user_data_installs_the_bundle_read_only_when_its_hash_matches(terraform: Runner, tmp_path: Path) -> None:
    bundle = tmp_path / "stepspot-agent.pyz"
    bundle.write_bytes(b"bundle bytes")
    host_dir = tmp_path / "opt" / "stepspot"
    script = _script(_render(terraform, tmp_path, host_dir, hashlib.sha256(b"bundle bytes").hexdigest()))

    result = _run(script, tmp_path, bundle)

    installed = host_dir / "stepspot-agent.pyz"
    assert installed.read_bytes() == b"bundle bytes", result.stdout + result.stderr
    assert stat.S_IMODE(installed.stat().st_mode) == 0o444
    assert f"s3://bucket/{KEY}" in (tmp_path / "aws.calls").read_text()
    assert "runner bundle installed at" in result.stdout


@pytest.mark.skipif(os.name != "posix", reason="bash")
def test_user_data_refuses_a_bundle_whose_hash_differs(terraform: Runner, tmp_path: Path) -> None:
    bundle = tmp_path / "stepspot-agent.pyz"
    bundle.write_bytes(b"tampered bytes")
    host_dir = tmp_path / "opt" / "stepspot"
    script = _script(_render(terraform, tmp_path, host_dir, hashlib.sha256(b"bundle bytes").hexdigest()))

    result = _run(script, tmp_path, bundle)

    assert not (host_dir / "stepspot-agent.pyz").exists()
    assert len((tmp_path / "aws.calls").read_text().splitlines()) == 8  # every retry downloaded again
    assert f"could not install s3://bucket/{KEY}: check the instance role's s3:GetObject" in result.stdout
