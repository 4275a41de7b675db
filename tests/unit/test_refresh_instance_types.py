"""scripts/refresh_instance_types.py against moto's EC2 (DescribeInstanceTypes with real figures)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "functions" / "stepspot" / "data" / "instance_types.json"


def _script():
    spec = importlib.util.spec_from_file_location("refresh_instance_types", ROOT / "scripts/refresh_instance_types.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def ec2_credentials(monkeypatch):
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)


def test_the_script_writes_vcpus_memory_gpus_and_efa_of_the_families_and_keeps_the_defaults(tmp_path, ec2_credentials):
    output = tmp_path / "instance_types.json"
    output.write_text(json.dumps({"defaults": {"spot_instance_types": ["m7i.large"], "mnp_max_nodes": 8}}))
    with mock_aws():
        assert _script().main(["--region", "eu-west-1", "--output", str(output)]) == 0
    document = json.loads(output.read_text())
    assert document["defaults"] == {"spot_instance_types": ["m7i.large"], "mnp_max_nodes": 8}
    assert document["region"] == "eu-west-1" and document["retrieved"] and "DescribeInstanceTypes" in document["source"]
    types = document["instance_types"]
    assert types["g5.xlarge"] == {
        "vcpus": 4,
        "memory_mib": 16384,
        "gpus": 1,
        "gpu_memory_mib": 22888,
        "efa": False,
        "architecture": "x86_64",
    }
    assert types["p4d.24xlarge"]["gpus"] == 8 and types["p4d.24xlarge"]["efa"] is True
    assert types["r7i.16xlarge"]["memory_mib"] == 512 * 1024
    assert all(spec["architecture"] == "x86_64" for spec in types.values())


def test_a_default_type_ec2_does_not_know_stops_the_refresh(tmp_path, ec2_credentials):
    output = tmp_path / "instance_types.json"
    output.write_text(json.dumps({"defaults": {"spot_instance_types": ["c99z.large"]}}))
    with mock_aws(), pytest.raises(SystemExit, match=r"does not know the default instance types \['c99z.large'\]"):
        _script().main(["--output", str(output)])


def test_the_shipped_table_matches_what_the_script_reads(ec2_credentials, capsys):
    with mock_aws():
        assert _script().main(["--check", "--output", str(TABLE)]) == 0, capsys.readouterr().out
