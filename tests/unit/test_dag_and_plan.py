"""Graph analysis and planning: order, levels, critical path, estimates, initial task states."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stepspot import dag
from stepspot.errors import WorkflowValidationError
from stepspot.estimate import default_prices, task_cost
from stepspot.plan import build_plan, initial_task_states, plan_from_json, plan_to_json
from stepspot.workflow import parse_workflow


def task(task_id: str, deps=(), runtime=None, **fields) -> dict:
    entry = {"id": task_id, "container_image": "img", "command": ["run"], "depends_on": list(deps), **fields}
    if runtime is not None:
        entry["estimated_runtime"] = runtime
    return entry


def plan_of(tasks, **global_config):
    loaded = parse_workflow({"name": "t", "global_config": global_config, "tasks": tasks})
    return build_plan(loaded.workflow, "wf-1", loaded.warnings)


def test_critical_path_follows_runtimes_not_stage_count():
    # Two chains with uneven durations: A1=1,A2=10 and B1=10,B2=1 (hours); the longest path is 11 h.
    plan = plan_of(
        [task("A1", runtime=3600), task("A2", ["A1"], 36000), task("B1", runtime=36000), task("B2", ["B1"], 3600)]
    )

    assert plan.estimate["duration_seconds"] == 11 * 3600
    assert plan.critical_path in (["A1", "A2"], ["B1", "B2"])
    assert plan.levels == [["A1", "B1"], ["A2", "B2"]]


def test_critical_path_picks_the_heaviest_branch_of_a_diamond():
    plan = plan_of(
        [
            task("src", runtime=60),
            task("fast", ["src"], 60),
            task("slow", ["src"], 6000),
            task("sink", ["fast", "slow"], 60),
        ]
    )

    assert plan.critical_path == ["src", "slow", "sink"]
    assert plan.estimate["duration_seconds"] == 6120
    assert plan.tasks["src"].dependents == ["fast", "slow"]
    assert plan.tasks["sink"].level == 2


def test_default_runtime_is_used_when_no_estimate_given():
    assert plan_of([task("a"), task("b", ["a"])]).estimate["duration_seconds"] == 2 * 3600
    assert plan_of([task("a")], default_runtime=120).estimate["duration_seconds"] == 120


def test_multi_node_and_opted_out_tasks_are_priced_on_demand():
    plan = plan_of(
        [
            task("spot", runtime=3600, vcpus=4, memory=8192),
            task("mpi", runtime=3600, nodes=4),
            task("od", runtime=3600, spot_enabled=False),
        ]
    )

    assert plan.tasks["spot"].use_spot and not plan.tasks["mpi"].use_spot and not plan.tasks["od"].use_spot
    assert plan.tasks["mpi"].estimated_spot_usd == plan.tasks["mpi"].estimated_on_demand_usd
    assert plan.tasks["spot"].estimated_spot_usd < plan.tasks["spot"].estimated_on_demand_usd
    assert 0 < plan.estimate["spot_savings_usd"] < plan.estimate["on_demand_usd"]


def test_on_demand_only_strategy_has_no_saving():
    plan = plan_of([task("a", runtime=3600)], spot_strategy="on-demand-only")

    assert plan.estimate["spot_savings_usd"] == 0 and not plan.tasks["a"].use_spot


def test_cost_scales_with_vcpus_memory_and_nodes():
    prices = default_prices()
    base = task_cost(3600, 4, 8192, 0, 1, False, prices).on_demand_usd

    assert task_cost(3600, 4, 8192, 0, 2, False, prices).on_demand_usd == pytest.approx(2 * base)
    assert task_cost(3600, 4, 32768, 0, 1, False, prices).on_demand_usd > base
    assert task_cost(3600, 8, 8192, 0, 1, False, prices).on_demand_usd > base
    # The fitted rates reproduce the reference instance: c6i.xlarge (4 vCPU, 8 GiB) is $0.17/h on demand.
    assert base == pytest.approx(0.17, rel=0.1)


def test_plan_estimate_names_its_price_source_and_date():
    prices = plan_of([task("a")]).estimate["prices"]

    assert prices["retrieved"] == "2026-11-01" and "us-east-1" in prices["source"]


def test_plan_round_trips_through_json():
    plan = plan_of([task("a"), task("b", ["a"], checkpoint_enabled=True, retry_attempts=5)])

    again = plan_from_json(plan_to_json(plan))

    assert again == plan
    assert again.tasks["b"].retry_attempts == 5 and again.tasks["a"].retry_attempts == 3


def test_initial_states_count_unfinished_dependencies_and_honour_skips():
    plan = plan_of([task("a"), task("b"), task("c", ["a", "b"]), task("d", ["c"])])

    states = {s.task_id: (s.state, s.remaining_deps) for s in initial_task_states(plan)}
    assert states == {"a": ("PENDING", 0), "b": ("PENDING", 0), "c": ("PENDING", 2), "d": ("PENDING", 1)}

    resumed = {s.task_id: (s.state, s.remaining_deps) for s in initial_task_states(plan, ["a"])}
    assert resumed["a"] == ("SUCCEEDED", 0) and resumed["c"] == ("PENDING", 1)


def test_skips_must_be_known_and_closed_under_dependencies():
    plan = plan_of([task("a"), task("b", ["a"])])

    with pytest.raises(WorkflowValidationError) as info:
        initial_task_states(plan, ["zz", "b"])

    text = [str(p) for p in info.value.problems]
    assert text == [
        "skip_tasks[0]: unknown task id 'zz': skip only tasks of this workflow",
        "skip_tasks ('b'): cannot skip 'b' while its dependencies ['a'] run again: skip them too",
    ]


@st.composite
def random_dags(draw):
    size = draw(st.integers(1, 40))
    deps = {}
    for i in range(size):
        parents = draw(st.lists(st.integers(0, max(i - 1, 0)), max_size=4, unique=True)) if i else []
        deps[f"t{i}"] = [f"t{p}" for p in parents]
    runtime = {t: float(draw(st.integers(1, 100))) for t in deps}
    return deps, runtime


@settings(max_examples=60, deadline=None)
@given(random_dags())
def test_analysis_invariants_on_random_dags(graph):
    deps, runtime = graph
    ids = list(deps)
    random.Random(0).shuffle(ids)  # input order must not matter
    topo = dag.analyse({t: deps[t] for t in ids}, runtime)

    position = {t: i for i, t in enumerate(topo.order)}
    assert sorted(topo.order) == sorted(deps)
    for child, parents in deps.items():
        for parent in parents:
            assert position[parent] < position[child]
            assert topo.level_of[child] > topo.level_of[parent]
    # The critical path is a chain whose length equals the latest finish time.
    path = topo.critical_path
    assert all(path[i] in deps[path[i + 1]] for i in range(len(path) - 1))
    assert sum(runtime[t] for t in path) == pytest.approx(topo.critical_path_seconds)
    assert topo.critical_path_seconds == pytest.approx(max(topo.finish_at.values()))


def test_plan_costs_agree_with_the_estimate_module():
    # build_plan inlines the cost formula for speed; it must price exactly like estimate.task_cost.
    plan = plan_of([task("a", runtime=5000, vcpus=8, memory=30000, gpus=1), task("b", runtime=700, nodes=3)])
    prices = default_prices()

    for planned in plan.tasks.values():
        cost = task_cost(
            planned.estimated_runtime_seconds,
            planned.vcpus,
            planned.memory,
            planned.gpus,
            planned.nodes,
            planned.use_spot,
            prices,
        )
        assert planned.estimated_on_demand_usd == pytest.approx(cost.on_demand_usd)
        assert planned.estimated_spot_usd == pytest.approx(cost.planned_usd)


@pytest.mark.parametrize(
    "tasks",
    [
        # every dependency earlier in the document: validation sorts nothing, planning does
        [task("a", runtime=60), task("b", ["a"], 600), task("c", ["a"], 60), task("d", ["c", "b"], 60)],
        # dependencies later in the document, inputs as edges: validation sorts to rule out cycles
        [
            task("d", ["c", "b"], 60),
            task("c", ["a"], 60, inputs=[{"from": "b", "path": "out/x"}]),
            task("b", ["a"], 600, outputs=["out/"]),
            task("a", runtime=60),
            task("e", runtime=5),
        ],
    ],
)
def test_plan_from_the_validated_graph_equals_the_plan_built_from_scratch(tasks):
    loaded = parse_workflow({"name": "g", "tasks": tasks})
    assert loaded.graph is not None and loaded.graph.ids == [t["id"] for t in tasks]

    reused = build_plan(loaded.workflow, "wf", loaded.warnings, graph=loaded.graph)
    scratch = build_plan(loaded.workflow, "wf", loaded.warnings)

    assert plan_to_json(reused) == plan_to_json(scratch)
    assert reused.order.index("a") < reused.order.index("b") < reused.order.index("d")


def test_an_invalid_graph_gives_no_graph_to_plan_with():
    nodes = [(0, "a", ["b"]), (1, "b", ["a"])]
    graph, problems = dag.check_graph(nodes)

    assert graph is None
    assert [p.message.split(":")[0] for p in problems] == ["dependency cycle a -> b -> a"]


def test_plan_parts_build_only_the_task_records_asked_for():
    from stepspot.plan import plan_parts

    loaded = parse_workflow({"name": "p", "tasks": [task("a", runtime=60), task("b", ["a"], 60, nodes=2)]})
    parts = plan_parts(loaded.workflow, graph=loaded.graph)
    whole = build_plan(loaded.workflow, "wf", loaded.warnings)

    assert parts.task(1) == whole.tasks["b"]
    assert parts.topology.order_indices == [0, 1] and parts.estimate == whole.estimate
