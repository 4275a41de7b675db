"""Validation skips building a task's SubmitJob request when a cheap bound says it fits: the bound must
never be below the exact size, or an oversized task would pass validation and fail at SubmitJob."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from stepspot.fleet import SUBMIT_JOB_MAX_BYTES, submit_request_bytes, submit_request_bytes_at_most
from stepspot.workflow import parse_workflow

ALPHABETS = ["abc/xyz-_.=", '"\\\n\t\x01', "é€ü", "\U0001f600\U0001d11e"]  # plain, escaped, BMP, astral


def _text(rng: random.Random, longest: int) -> str:
    alphabet = "".join(rng.sample(ALPHABETS, k=rng.randint(1, len(ALPHABETS))))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))


@pytest.mark.parametrize("seed", range(300))
def test_the_bound_is_never_below_the_exact_request_size(seed: int) -> None:
    rng = random.Random(seed)
    nodes = rng.choice([1, 1, 2, 256])
    task = SimpleNamespace(
        id=rng.choice(["a", "t" * 80, f"task-{seed}"]),
        command=[_text(rng, 40) for _ in range(rng.randint(1, 12))],
        environment={_text(rng, 20) or "K": _text(rng, 60) for _ in range(rng.randint(0, 8))},
        nodes=nodes,
        multi_node=nodes > 1,
        vcpus=rng.choice([1, 16, 192]),
        memory=rng.choice([128, 4096, 1_572_864]),
        gpus=rng.choice([0, 1, 16]),
        checkpoint_enabled=rng.random() < 0.5,
        checkpoint_interval=rng.choice([None, 60, 86_400, "auto"]),
        inputs=[],
        outputs=[],
    )
    assert submit_request_bytes_at_most(task) >= submit_request_bytes(task)


def test_a_task_just_over_the_limit_is_still_refused() -> None:
    """The bound only skips work: a task whose exact size is over the limit gets the exact-size message."""
    base = {"id": "big", "container_image": "i", "command": ["run"]}
    fits = parse_workflow({"tasks": [{**base, "environment": {"V": "x" * (SUBMIT_JOB_MAX_BYTES - 4000)}}]})
    assert fits.workflow.tasks[0].id == "big"
    with pytest.raises(Exception, match=r"SubmitJob request would be [\d,]+ bytes, over the 30,720-byte limit"):
        parse_workflow({"tasks": [{**base, "environment": {"V": "x" * SUBMIT_JOB_MAX_BYTES}}]})
