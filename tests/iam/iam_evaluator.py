"""Python side of the IAM evaluation: Terraform's policies, the node evaluator, name mapping, verdicts.

One node process (tests/iam/evaluate.mjs, @cloud-copilot/iam-simulate) serves the whole test session
over a line protocol; the policies come from tests/iam/iam_policies.py run once in the tools venv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from iam_calls import IamRequest, UnmappedCall, lambda_runtime_requests, requests_for

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NODE_MODULES = HERE / "node_modules" / ".installed"
TOOLS_PYTHON = ROOT / ".tools" / "venv" / "bin" / "python"
ALLOWED = "Allowed"
LOCAL_ENVIRONMENT = "local"  # Terraform's name_prefix is "stepspot-<environment>" (tests/iam/iam_policies.py)


class IamSetupError(Exception):
    """The evaluation cannot run (a tool is missing): says which make target installs it."""


@dataclass(frozen=True)
class Terraform:
    policies: dict[str, dict[str, Any]]
    environment: dict[str, str]  # what Terraform sets in the functions' environment (local names)
    encryption: dict[str, str]  # bucket/topic ARN -> the KMS key it is encrypted with
    function_arns: dict[str, str]  # function key -> ARN
    resource_policies: dict[str, Any]  # resource ARN -> its resource policy (the KMS key policy)


@cache
def terraform() -> Terraform:
    if not TOOLS_PYTHON.exists():
        raise IamSetupError("the tools venv (python-hcl2) is missing: run `make tools`")
    done = subprocess.run(
        [str(TOOLS_PYTHON), str(HERE / "iam_policies.py")], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise IamSetupError(f"extracting Terraform's IAM policies failed: {done.stderr.strip()}")
    return Terraform(**json.loads(done.stdout))


@dataclass(frozen=True)
class Verdict:
    request: IamRequest
    result: str
    statements: tuple[str, ...]
    error: str | None = None

    @property
    def allowed(self) -> bool:
        return self.result == ALLOWED

    def explain(self) -> str:
        request = self.request
        context = f" with context {dict(request.context)}" if request.context else " with no condition keys"
        needed = {"Effect": "Allow", "Action": request.action, "Resource": request.resource}
        detail = f" ({self.error})" if self.error else ""
        return (
            f"{request.principal}: {request.call} needs {request.action} on {request.resource}{context}: "
            f"{self.result}{detail} by Terraform's policy for {request.principal}; a statement that would "
            f"allow it: {json.dumps(needed)}"
        )


class Evaluator:
    """The node process, started on first use and kept for the session."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if not NODE_MODULES.exists():
            raise IamSetupError("the IAM evaluator is not installed: run `make iam-simulator` (npm ci in tests/iam)")
        try:
            return subprocess.Popen(
                ["node", str(HERE / "evaluate.mjs")],
                cwd=HERE,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        except FileNotFoundError:
            raise IamSetupError("node is not on PATH: install Node.js (it comes with npm)") from None

    def evaluate(
        self,
        requests: Iterable[IamRequest],
        policies: Mapping[str, Any],
        resource_policies: Mapping[str, Any] | None = None,
    ) -> list[Verdict]:
        unique = {request.key(): request for request in requests}
        batch = list(unique.values())
        if not batch:
            return []
        if self._process is None or self._process.poll() is not None:
            self._process = self._start()
        assert self._process.stdin is not None and self._process.stdout is not None
        needed = {r.principal: policies[r.principal] for r in batch if r.principal in policies}
        resource_policies = resource_policies or {}
        payload = {
            "policies": needed,
            "resourcePolicies": {
                r.resource: resource_policies[r.resource] for r in batch if r.resource in resource_policies
            },
            "requests": [r.as_json() for r in batch],
        }
        self._process.stdin.write(json.dumps(payload) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            raise IamSetupError("the IAM evaluator (node tests/iam/evaluate.mjs) exited without an answer")
        answer = json.loads(line)
        if isinstance(answer, dict):
            raise IamSetupError(f"the IAM evaluator failed: {answer.get('fatal')}")
        return [
            Verdict(request, item["result"], tuple(item.get("statements", [])), item.get("error"))
            for request, item in zip(batch, answer, strict=True)
        ]

    def close(self) -> None:
        if self._process is not None:
            self._process.stdin.close()  # type: ignore[union-attr]
            self._process.wait(timeout=10)
            self._process = None


# -- recorded calls -> requests --------------------------------------------------------------------


def _arn_name(value: str) -> str:
    """The name inside an ARN: ...:job-queue/NAME, ...:stateMachine:NAME, ...:NAME."""
    return value.rsplit("/", 1)[-1].rsplit(":", 1)[-1] if value.startswith("arn:") else value


def name_map(names: Mapping[str, str | None], environment: Mapping[str, str]) -> dict[str, str]:
    """The names a test used for the deployment's resources -> the names Terraform's policies use."""
    mapping: dict[str, str] = {}
    for variable, used in names.items():
        canonical = environment.get(variable)
        if not used or not canonical or used == canonical:
            continue
        mapping[used] = canonical
        if used.startswith("arn:") and canonical.startswith("arn:"):
            mapping.setdefault(_arn_name(used), _arn_name(canonical))
        if variable.endswith("_JOB_DEFINITION_ARN"):
            # Derived definitions are named "<base name>-<hash>" (stepspot.aws.batch.derived_definition_name).
            used_base, canonical_base = (_arn_name(v.rsplit(":", 1)[0]) for v in (used, canonical))
            mapping.setdefault(f"{used_base}-", f"{canonical_base}-")
    return mapping


def _rename(value: Any, mapping: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        if value in mapping:
            return mapping[value]
        for used, canonical in mapping.items():
            if value.startswith(used + "/"):  # "bucket/key" (CopySource)
                return canonical + value[len(used) :]
            if used.endswith("-") and value.startswith(used):  # derived job definition names
                return canonical + value[len(used) :]
        return value
    if isinstance(value, list):
        return [_rename(item, mapping) for item in value]
    if isinstance(value, dict):
        return {mapping.get(k, k): _rename(v, mapping) for k, v in value.items()}
    return value


def requests_from_log(
    lines: Iterable[str], environment: Mapping[str, str], encryption: Mapping[str, str] | None = None
) -> tuple[list[IamRequest], list[str]]:
    """Requests of the calls that have a principal, and one message per call the table does not map."""
    requests: list[IamRequest] = []
    unmapped: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        principal = entry.get("principal")
        if not principal:
            continue  # test setup or the local engine acting as the user: not a deployed principal
        params = _rename(entry["params"], name_map(entry.get("names") or {}, environment))
        try:
            requests.extend(requests_for(principal, entry["service"], entry["operation"], params, encryption))
        except UnmappedCall as exc:
            unmapped.append(str(exc))
    for principal in sorted({r.principal for r in requests if r.principal.startswith("lambda:")}):
        key = principal.split(":", 1)[1]
        requests.extend(lambda_runtime_requests(principal, f"stepspot-{LOCAL_ENVIRONMENT}-{key.replace('_', '-')}"))
    return requests, unmapped


def report_unused(used: Mapping[str, set[tuple[str, str]]], policies: Mapping[str, Any]) -> list[str]:
    """Permissions granted but never used, per principal that made calls (Sid: action)."""
    lines = []
    for principal in sorted(used):
        policy = policies.get(principal)
        if policy is None:
            continue
        unused = [
            f"{statement.get('Sid', '?')}: {action}"
            for statement in policy["Statement"]
            if statement.get("Effect") == "Allow"
            for action in statement["Action"]
            if (statement.get("Sid", "?"), action) not in used[principal]
        ]
        if unused:
            lines.append(f"  {principal}: " + ", ".join(unused))
    return lines


def main() -> int:
    """`python tests/iam/iam_evaluator.py CALL_LOG...`: evaluate recorded calls by hand."""
    found = terraform()
    lines = [line for path in sys.argv[1:] for line in Path(path).read_text().splitlines()]
    requests, unmapped = requests_from_log(lines, found.environment, found.encryption)
    evaluator = Evaluator()
    try:
        verdicts = evaluator.evaluate(requests, found.policies, found.resource_policies)
    finally:
        evaluator.close()
    for message in unmapped:
        print(f"UNMAPPED {message}")
    for verdict in verdicts:
        print(("ALLOWED " if verdict.allowed else "DENIED  ") + verdict.explain())
    return 1 if unmapped or any(not v.allowed for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
