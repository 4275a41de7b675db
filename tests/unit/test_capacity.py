"""The fit check: which queues a task may use, and one exact sentence when no instance type holds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stepspot.capacity import (
    ECS_RESERVED_MEMORY_MIB,
    InstanceType,
    capacity_from_variables,
    check_task,
    check_workflow,
    default_instance_table,
    memory_ceiling,
    queues_of,
)
from stepspot.capacity_sources import offline_capacity
from stepspot.terraform_vars import variable_defaults
from stepspot.workflow import parse_workflow

REPO = Path(__file__).resolve().parents[2]
DEV = "terraform/environments/dev.tfvars"
SMALL = {
    "spot_instance_types": ["c5.large", "m5.xlarge"],
    "ondemand_instance_types": ["m5.xlarge"],
    "mnp_instance_types": ["c5n.9xlarge"],
    "mnp_max_vcpus": 72,
    "mnp_max_nodes": 4,
}


def _check(values=SMALL, **task):
    shape = {"vcpus": 1, "memory": 1024, "gpus": 0, "nodes": 1, "queue": "auto", "use_spot": True, **task}
    return check_task("sim", capacity=capacity_from_variables(values, "dev", DEV), **shape)


def test_usable_memory_counts_what_ecs_keeps():
    # m4.large registers 7,985 of 8,192 MiB (Batch User Guide); the rule keeps 3 % + 32 MiB
    assert InstanceType("m4.large", 2, 8192).usable_memory_mib == 7946 - ECS_RESERVED_MEMORY_MIB
    assert InstanceType("x", 4, 16384).usable_memory_mib == int(16384 * 0.97) - 32


def test_a_task_that_fits_is_accepted():
    assert _check(vcpus=4, memory=15000) is None


def test_memory_equal_to_the_nominal_size_does_not_fit_because_ecs_keeps_some():
    assert _check(vcpus=4, memory=16384) == (
        "task 'sim' asks for 4 vCPUs and 16384 MiB per node, more than any instance type of queue 'spot' in "
        "environment 'dev' can hold (the largest task it can hold is 4 vCPUs, 15860 MiB (m5.xlarge), after the "
        "memory ECS keeps (3% + 32 MiB of each instance)): lower the task's vcpus/memory/gpus to fit, or add larger "
        "instance types to spot_instance_types in terraform/environments/dev.tfvars"
    )


def test_a_task_must_also_fit_the_on_demand_queue_it_may_fall_back_to():
    values = {**SMALL, "spot_instance_types": ["r5.large", "m5.xlarge"], "ondemand_instance_types": ["c5.large"]}
    message = _check(values, vcpus=2, memory=8000)
    assert message is not None and "queue 'on-demand'" in message and "ondemand_instance_types" in message
    # not allowed on Spot: only On-Demand counts
    assert _check(values, vcpus=2, memory=3000, use_spot=False) is None


def test_a_gpu_task_without_gpu_queues_is_refused():
    assert _check(gpus=1, vcpus=4, memory=8192) == (
        "task 'sim' asks for 4 vCPUs and 8192 MiB and 1 GPU per node, but environment 'dev' has no GPU queues "
        "(gpu_enabled is false in terraform/environments/dev.tfvars): set gpu_enabled = true there and apply, or "
        'set "gpus": 0'
    )
    assert _check(queue="gpu") == (
        "task 'sim' names queue 'gpu', but environment 'dev' has no GPU queues (gpu_enabled is false in "
        'terraform/environments/dev.tfvars): set gpu_enabled = true there and apply, or remove "queue": "gpu"'
    )


def test_a_gpu_task_goes_to_the_gpu_queues_and_must_fit_them():
    values = {**SMALL, "gpu_enabled": True, "gpu_instance_types": ["g5.xlarge", "g5.2xlarge"]}
    assert queues_of("auto", 1, 1, True) == ["gpu-spot", "gpu-on-demand"]
    assert _check(values, gpus=1, vcpus=8, memory=30000) is None
    message = _check(values, gpus=1, vcpus=8, memory=61440)
    assert message is not None
    assert "queue 'gpu-spot'" in message and "8 vCPUs, 31752 MiB, 1 GPU (g5.2xlarge)" in message


def test_a_named_queue_the_deployment_lacks_is_refused():
    assert _check(queue="gpu-spot") == (
        "task 'sim' names queue 'gpu-spot', which environment 'dev' does not have (its queues: spot, on-demand, "
        "mnp; from terraform/environments/dev.tfvars): use one of those or 'auto', or set gpu_enabled = true for "
        "the GPU queues"
    )


def test_a_task_pinned_to_a_spot_queue_that_does_not_allow_spot_is_refused():
    # spot_enabled false (or spot_strategy on-demand-only) and queue 'spot' contradict: it would run on Spot
    assert _check(queue="spot", use_spot=False) == (
        "task 'sim' names queue 'spot', but Spot is off for it (its spot_enabled is false or global_config."
        "spot_strategy is 'on-demand-only'): set its queue to 'on-demand' or 'auto', or allow Spot"
    )
    values = {**SMALL, "gpu_enabled": True, "gpu_instance_types": ["g5.xlarge"]}
    assert "names queue 'gpu-spot', but Spot is off for it" in (_check(values, queue="gpu-spot", use_spot=False) or "")
    assert _check(queue="on-demand", use_spot=False) is None
    loaded = parse_workflow(
        {
            "global_config": {"spot_strategy": "on-demand-only"},
            "tasks": [{"id": "pinned", "container_image": "i", "command": ["x"], "queue": "spot"}],
        }
    )
    (problem,) = check_workflow(loaded.workflow, capacity_from_variables(SMALL, "dev", DEV))
    assert "names queue 'spot', but Spot is off for it" in problem.message


def test_a_multi_node_task_asking_more_nodes_than_allowed_is_refused():
    assert _check(nodes=6, vcpus=8, memory=8192) == (
        "task 'sim' asks for 6 nodes, more than the 4 the multi-node environment of 'dev' allows (mnp_max_nodes in "
        "terraform/environments/dev.tfvars): lower nodes to at most 4, or raise mnp_max_nodes"
    )


def test_a_multi_node_task_beyond_the_environments_vcpu_ceiling_is_refused():
    assert _check(nodes=3, vcpus=36, memory=8192) == (
        "task 'sim' asks for 3 x 36 = 108 vCPUs at once, more than the 72 the compute environment of queue 'mnp' in "
        "environment 'dev' may run (mnp_max_vcpus in terraform/environments/dev.tfvars): lower vcpus or nodes, or "
        "raise mnp_max_vcpus"
    )


def test_instance_types_the_table_does_not_know_refuse_nothing():
    values = {**SMALL, "spot_instance_types": ["c99z.large"], "ondemand_instance_types": ["c99z.large"]}
    assert _check(values, vcpus=64, memory=500_000) is None
    assert capacity_from_variables(values, "dev", DEV).unknown_types == ("c99z.large",)


def test_a_family_name_means_every_size():
    values = {**SMALL, "spot_instance_types": ["r7i"], "ondemand_instance_types": ["r7i"]}
    assert _check(values, vcpus=64, memory=500_000) is None


def test_check_workflow_names_the_task_and_its_position():
    loaded = parse_workflow(
        {
            "tasks": [
                {"id": "ok", "container_image": "i", "command": ["x"]},
                {"id": "big", "container_image": "i", "command": ["x"], "vcpus": 64},
            ]
        }
    )
    problems = check_workflow(loaded.workflow, capacity_from_variables(SMALL, "dev", DEV))
    assert [p.location for p in problems] == ["$.tasks[1] (task 'big')"]


def test_memory_ceiling_is_the_largest_instance_that_holds_the_vcpus_and_gpus():
    assert memory_ceiling(["c5.large", "m5.xlarge", "r5.large"], vcpus=2) == int(16384 * 0.97) - 32
    assert memory_ceiling(["c5.large", "m5.xlarge"], vcpus=4) == int(16384 * 0.97) - 32
    assert memory_ceiling(["c5.large"], vcpus=4) is None


def test_the_default_instance_types_exist_and_reach_64_vcpus_and_512_gib():
    table = default_instance_table()
    assert table.source and table.retrieved
    for variable in ("spot_instance_types", "ondemand_instance_types", "mnp_instance_types", "gpu_instance_types"):
        types = [table.get(name) for name in table.defaults[variable]]
        assert all(types), variable
    spot = [table.get(n) for n in table.defaults["spot_instance_types"]]
    assert max(t.vcpus for t in spot) >= 64 and max(t.memory_mib for t in spot) >= 512 * 1024


def test_terraform_variables_mirror_the_default_instance_types():
    """tf owns terraform/variables.tf; its defaults must equal the data file's (one fact, two readers)."""
    declared = variable_defaults((REPO / "terraform/variables.tf").read_text())
    if "mnp_max_nodes" not in declared:
        pytest.skip("terraform/variables.tf does not declare the capacity variables of CONTRACTS.md yet")
    defaults = default_instance_table().defaults
    for name, value in defaults.items():
        assert declared.get(name) == value, name


def test_the_terraform_efa_list_agrees_with_the_instance_table():
    """The compute module refuses mnp_efa_enabled on types outside its EFA list: for every type both know,
    EC2's EfaSupported (the table) must agree, so the list never lets a non-EFA type through."""
    import re

    text = (REPO / "terraform/modules/compute/main.tf").read_text()
    listed = set(re.findall(r'"([^"]+)"', re.search(r"efa_instance_types = toset\(\[(.*?)\]\)", text, re.S).group(1)))
    table = default_instance_table()
    known = {name: table.get(name) for name in listed if table.get(name) is not None}
    assert known, "no type of the Terraform EFA list is in the instance table"
    assert sorted(name for name, t in known.items() if not t.efa) == []


def _dev_like(tmp_path: Path) -> Path:
    """The repository's dev variables, with the GPU queues dev is to have (CONTRACTS.md: gpu_enabled)."""
    (tmp_path / "terraform/environments").mkdir(parents=True)
    text = (REPO / DEV).read_text()
    if "gpu_enabled" not in text:
        text += "\ngpu_enabled = true\n"
    (tmp_path / DEV).write_text(text)
    return tmp_path / "terraform"


def _shipped_workflows() -> list[tuple[str, object]]:
    from stepspot.workflow_templates import discover_templates

    shipped: list[tuple[str, object]] = [
        (str(p.relative_to(REPO)), json.loads(p.read_text())) for p in sorted((REPO / "examples").rglob("*.json"))
    ]
    for name, template in sorted(discover_templates(REPO / "templates/workflows").items()):
        shipped.append((f"template {name}", template.render({})[0]))
    return shipped


@pytest.mark.parametrize("name,document", _shipped_workflows(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_shipped_example_and_template_fits_dev(name, document, tmp_path):
    loaded = parse_workflow(document)
    capacity = offline_capacity("dev", environ={"STEPSPOT_TERRAFORM_DIR": str(_dev_like(tmp_path))})
    assert check_workflow(loaded.workflow, capacity) == []


def test_validate_and_plan_refuse_a_task_that_fits_nowhere_with_exit_2(tmp_path, capsys):
    from stepspot.cli import main

    workflow = tmp_path / "big.json"
    task = {"id": "huge", "container_image": "i", "command": ["x"], "vcpus": 96, "memory": 4096}
    workflow.write_text(json.dumps({"name": "big", "tasks": [task]}))
    for command in ("validate", "plan"):
        assert main([command, "--env", "dev", str(workflow)]) == 2
        err = capsys.readouterr().err
        assert "task 'huge' asks for 96 vCPUs and 4096 MiB per node, more than any instance type of queue 'spot'" in err
        assert "add larger instance types to spot_instance_types in terraform/environments/dev.tfvars" in err


def test_a_deployed_environment_is_checked_against_its_terraform_outputs():
    from stepspot.capacity_sources import deployed_capacity

    outputs = {
        "spot_instance_types": json.dumps(["c5.large", "c5.xlarge"]),
        "ondemand_instance_types": json.dumps(["c5.xlarge"]),
        "mnp_instance_types": json.dumps(["c5n.9xlarge"]),
        "gpu_instance_types": json.dumps(["g5.xlarge"]),
        "gpu_spot_job_queue_arn": "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-dev-gpu-spot",
        "gpu_ondemand_job_queue_arn": "arn:aws:batch:eu-west-1:123456789012:job-queue/stepspot-dev-gpu-ondemand",
        "mnp_max_nodes": "4",
    }
    capacity = deployed_capacity("dev", outputs, environ={}, cwd=REPO)
    assert capacity.has_gpu and capacity.mnp_max_nodes == 4
    assert capacity.instance_types_by_queue()["spot"] == ["c5.large", "c5.xlarge"]
    message = check_task("md", vcpus=8, memory=4096, gpus=0, nodes=1, queue="auto", use_spot=True, capacity=capacity)
    assert message is not None and "the Terraform outputs of 'dev'" in message
    # without capacity outputs (an older deployment) the Terraform variables decide
    assert deployed_capacity("dev", {}, environ={}, cwd=REPO).source == DEV
