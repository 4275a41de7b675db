"""pytest plugin: every AWS call the tests make as a deployed principal is evaluated against the IAM
policies Terraform defines for it.

- Recording: ``stepspot.call_log`` (a botocore hook) writes each call to the file named by
  ``STEPSPOT_CALL_LOG``, which this plugin sets per test; job subprocesses (the agent) inherit it.
  The handlers of ``stepspot.handlers`` run as ``lambda:<key>`` (the local Lambda invoker sets it;
  here each module's ``lambda_handler`` is wrapped for the tests that call it directly).
- After each test, its calls are mapped to IAM requests (tests/iam/iam_calls.py) and evaluated by one
  node process per session (@cloud-copilot/iam-simulate): a denied or unmapped call fails that test.
- At the end, the permissions granted but never used by the session are listed (not a failure); under
  pytest-xdist each worker sends what its tests used to the controller, which lists it for the whole run.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from iam_evaluator import Evaluator, IamSetupError, Verdict, report_unused, requests_from_log, terraform

_evaluator = Evaluator()
_used: defaultdict[str, set[tuple[str, str]]] = defaultdict(set)
_counts = {"calls": 0, "requests": 0}
# Only tests under these directories run deployed code against emulated AWS (tests/unit uses fakes).
EVALUATED = ("integration", "e2e", "iam")


def pytest_configure(config: pytest.Config) -> None:
    from stepspot import call_log

    call_log.install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _evaluator.close()


@pytest.fixture(scope="session")
def _handlers_act_as_their_role() -> Iterator[None]:
    from stepspot import call_log
    from stepspot.local.lambdas import FUNCTIONS, lambda_principal

    saved = []
    for key, module_name in FUNCTIONS.items():
        module = importlib.import_module(module_name)
        original = module.lambda_handler
        if getattr(original, "_iam_principal", None):
            continue

        def wrapper(event: Any, context: Any, _original: Any = original, _key: str = key) -> Any:
            with call_log.acting_as(lambda_principal(_key)):
                return _original(event, context)

        functools.update_wrapper(wrapper, original)
        wrapper._iam_principal = key  # type: ignore[attr-defined]
        module.lambda_handler = wrapper
        saved.append((module, original))
    yield
    for module, original in saved:
        module.lambda_handler = original


def _evaluated(request: pytest.FixtureRequest) -> bool:
    parts = Path(str(request.node.path)).parts
    return "tests" in parts and parts[parts.index("tests") + 1] in EVALUATED


@pytest.fixture(autouse=True)
def _iam_evaluation(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    if not _evaluated(request):
        yield
        return
    from stepspot import call_log
    from stepspot.call_log import CALL_LOG_ENV

    request.getfixturevalue("_handlers_act_as_their_role")
    log = tmp_path_factory.mktemp("aws-calls") / "calls.jsonl"
    log.touch()
    saved = os.environ.get(CALL_LOG_ENV)
    os.environ[CALL_LOG_ENV] = str(log)
    try:
        yield
    finally:
        # An agent built in this process (not a subprocess) must not make later calls the job role's.
        call_log.set_default_principal(None)
        if saved is None:
            os.environ.pop(CALL_LOG_ENV, None)
        else:
            os.environ[CALL_LOG_ENV] = saved
    problems = evaluate_log(log)
    if problems:
        pytest.fail(
            "IAM: calls Terraform's policies would not allow (tests/iam, README 'What local mode checks'):\n"
            + "\n".join(f"- {p}" for p in problems),
            pytrace=False,
        )


def evaluate_log(log: Path) -> list[str]:
    lines = log.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    try:
        found = terraform()
    except IamSetupError as exc:
        return [str(exc)]
    requests, unmapped = requests_from_log(lines, found.environment, found.encryption)
    _counts["calls"] += len(lines)
    try:
        verdicts = _evaluator.evaluate(requests, found.policies, found.resource_policies)
    except IamSetupError as exc:
        return [str(exc)]
    record_verdicts(verdicts)
    return list(dict.fromkeys(unmapped)) + [v.explain() for v in verdicts if not v.allowed]


def record_verdicts(verdicts: list[Verdict]) -> None:
    """For tests that evaluate requests themselves (the state machine role): count them as used."""
    _counts["requests"] += len(verdicts)
    for verdict in verdicts:
        if verdict.allowed:
            for sid in verdict.statements:
                _used[verdict.request.principal].add((sid, verdict.request.action))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On a pytest-xdist worker: hand the permissions its tests used to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["iam_used"] = {principal: sorted(used) for principal, used in _used.items()}
        workeroutput["iam_counts"] = dict(_counts)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the pytest-xdist controller: merge what a finished worker's tests used."""
    output = getattr(node, "workeroutput", None) or {}
    for principal, used in output.get("iam_used", {}).items():
        _used[principal].update((sid, action) for sid, action in used)
    for key, count in output.get("iam_counts", {}).items():
        _counts[key] += count


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _used:
        return
    try:
        policies = terraform().policies
    except IamSetupError:
        return
    terminalreporter.section("IAM: permissions granted but never used by these tests")
    terminalreporter.write_line(
        f"{_counts['calls']} AWS calls recorded, {_counts['requests']} IAM requests allowed or denied "
        f"(principals: {', '.join(sorted(_used))})"
    )
    lines = report_unused(_used, policies)
    for line in lines or ["  none"]:
        terminalreporter.write_line(line)
