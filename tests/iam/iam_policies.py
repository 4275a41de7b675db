"""The identity policies Terraform defines for each principal, as IAM JSON with local mode's ARNs.

Run in the tools venv (python-hcl2 is there): ``.tools/venv/bin/python tests/iam/iam_policies.py``
prints ``{"policies": {principal: policy}, "environment", "encryption", "function_arns"}``; the
principals are ``lambda:<key>`` (module functions + the root module's statements), ``job`` (module
compute, data.aws_iam_policy_document.job) and ``states`` (module orchestration).

Why python-hcl2 and not ``terraform plan``/``console``: ``aws_iam_policy_document`` is computed by the
AWS provider, which is not reachable here (the offline toolchain's provider knows only the schema, so
``.json`` is unknown in a plan). What is ours to evaluate is small: the statement blocks and the
expressions naming their resources. This module evaluates that subset of HCL (references, string
templates, ``concat``/``values``/``tostring``/``merge``, ``[for x in xs : "..."]``, ``dynamic "statement"``) with
the values Terraform would compute from local mode's names (seeded below: the resource attributes
that only exist after an apply). Anything outside that subset stops it with the expression and file,
so a new construct in the policies cannot be silently misread.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
ACCOUNT = "123456789012"
REGION = "us-east-1"
ENVIRONMENT = "local"  # name_prefix = "stepspot-local", the prefix of every local mode resource
PREFIX = f"stepspot-{ENVIRONMENT}"
# Keep in step with functions/stepspot/local/lambdas.py FUNCTIONS (checked by tests/iam/test_iam_policies.py).
FUNCTION_KEYS = (
    "workflow_parser",
    "scheduler",
    "checkpoint_manager",
    "attempt_manager",
    "interruption_handler",
    "workflow_monitor",
)
ENVIRONMENTS = ("spot", "ondemand", "mnp")


class PolicyExtractionError(Exception):
    pass


def _arn(service: str, rest: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{rest}"


def seeded_modules() -> dict[str, dict[str, Any]]:
    """Module outputs that are attributes of created resources: local mode's names for them."""
    function_name = lambda key: f"{PREFIX}-{key.replace('_', '-')}"  # noqa: E731
    return {
        "storage": {
            "bucket_name": f"{PREFIX}-bucket",
            "bucket_arn": f"arn:aws:s3:::{PREFIX}-bucket",
            "state_table_name": f"{PREFIX}-state",
            "state_table_arn": _arn("dynamodb", f"table/{PREFIX}-state"),
            "checkpoint_table_name": f"{PREFIX}-checkpoints",
            "checkpoint_table_arn": _arn("dynamodb", f"table/{PREFIX}-checkpoints"),
            "kms_key_arn": _arn("kms", "key/00000000-0000-0000-0000-000000000000"),
        },
        "compute": {
            "job_queue_arns": {e: _arn("batch", f"job-queue/{PREFIX}-{e}") for e in ENVIRONMENTS},
            "job_queue_names": {e: f"{PREFIX}-{e}" for e in ENVIRONMENTS},
            "compute_environment_arns": {e: _arn("batch", f"compute-environment/{PREFIX}-{e}") for e in ENVIRONMENTS},
            "compute_environment_names": {e: f"{PREFIX}-{e}" for e in ENVIRONMENTS},
            "job_definition_name": f"{PREFIX}-job",
            "job_definition_arn": _arn("batch", f"job-definition/{PREFIX}-job:1"),
            "mnp_job_definition_name": f"{PREFIX}-mnp-job",
            "mnp_job_definition_arn": _arn("batch", f"job-definition/{PREFIX}-mnp-job:1"),
            "job_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{PREFIX}-batch-job",
            "spot_compute_environment_names": [f"{PREFIX}-spot"],  # gpu_enabled = false, as local mode
        },
        # Local mode has no shared file system (the module's outputs are null when it is off).
        "filesystem": {"efs": None, "fsx_lustre": None},
        "functions": {"function_arns": {k: _arn("lambda", f"function:{function_name(k)}") for k in FUNCTION_KEYS}},
    }


DATA = {
    "aws_caller_identity": {"current": {"account_id": ACCOUNT}},
    "aws_partition": {"current": {"partition": "aws"}},
    "aws_region": {"current": {"region": REGION, "name": REGION}},
}


def _log_groups(prefix: str, keys: tuple[str, ...]) -> dict[str, Any]:
    return {
        "this": {
            k: {"arn": _arn("logs", f"log-group:{prefix}{PREFIX}-{k.replace('_', '-')}"), "name": f"{prefix}{k}"}
            for k in keys
        }
    }


# -- a small HCL expression evaluator --------------------------------------------------------------


def _split_top(text: str, sep: str = ",") -> list[str]:
    parts, depth, quote, current = [], 0, False, []
    i = 0
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                current.append(text[i : i + 2])
                i += 2
                continue
            if char == '"':
                quote = False
        elif char == '"':
            quote = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(char)
        i += 1
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _interpolations(text: str) -> list[tuple[int, int]]:
    """(start, end) of each top-level ${...} in a template string."""
    spans, i = [], 0
    while True:
        start = text.find("${", i)
        if start < 0:
            return spans
        depth, j, quote = 0, start + 1, False
        while j < len(text):
            char = text[j]
            if quote:
                if char == "\\":
                    j += 2
                    continue
                if char == '"':
                    quote = False
            elif char == '"':
                quote = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        spans.append((start, j + 1))
        i = j + 1


_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "concat": lambda *lists: [x for items in lists for x in items],
    "values": lambda mapping: [mapping[k] for k in sorted(mapping)],
    "tostring": str,
    "flatten": lambda items: [x for item in items for x in (item if isinstance(item, list) else [item])],
    "join": lambda separator, items: separator.join(str(x) for x in items),
    "length": len,
    "tomap": lambda mapping: mapping,
    "merge": lambda *maps: {k: v for mapping in maps if isinstance(mapping, dict) for k, v in mapping.items()},
}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
}


def _find_top(text: str, token: str, start: int = 0) -> int:
    """Index of ``token`` outside brackets and strings, or -1."""
    depth, quote, i = 0, False, start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            quote = char != '"'
        elif char == '"':
            quote = True
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(token, i):
            return i
        i += 1
    return -1


class Scope:
    def __init__(self, names: Mapping[str, Any], where: str) -> None:
        self.names = dict(names)
        self.where = where

    def child(self, **names: Any) -> Scope:
        return Scope({**self.names, **names}, self.where)

    def fail(self, message: str) -> PolicyExtractionError:
        return PolicyExtractionError(
            f"{self.where}: {message} (tests/iam/iam_policies.py evaluates a small HCL subset)"
        )

    def template(self, text: str) -> Any:
        spans = _interpolations(text)
        if len(spans) == 1 and spans[0] == (0, len(text)):
            return self.expr(text[2:-1])
        out, last = [], 0
        for start, end in spans:
            out.append(text[last:start])
            value = self.expr(text[start + 2 : end - 1])
            if isinstance(value, list | dict):
                raise self.fail(f"a list or map interpolated into a string: {text!r}")
            out.append(str(value))
            last = end
        out.append(text[last:])
        return "".join(out)

    def expr(self, text: str) -> Any:
        text = text.strip()
        question = _find_top(text, "?")
        if question > 0:
            colon = _find_top(text, ":", question + 1)
            if colon < 0:
                raise self.fail(f"cannot read the conditional {text!r}")
            chosen = text[question + 1 : colon] if self.expr(text[:question]) else text[colon + 1 :]
            return self.expr(chosen)
        for operator in ("==", "!=", ">=", "<=", ">", "<"):
            at = _find_top(text, operator)
            if at > 0:
                left, right = text[:at], text[at + len(operator) :]
                return _COMPARISONS[operator](self.expr(left), self.expr(right))
        if text in ("null", "None"):  # bc-python-hcl2 writes null as None
            return None
        if text.startswith('"') and text.endswith('"'):
            return self.template(bytes(text[1:-1], "utf-8").decode("unicode_escape"))
        if text.startswith("[for "):
            match = re.fullmatch(r"\[for\s+(\w+)\s+in\s+(.+?)\s*:\s*(.+)\]", text, re.S)
            if not match:
                raise self.fail(f"cannot read the for expression {text!r}")
            name, source, body = match.groups()
            return [self.child(**{name: item}).expr(body) for item in self.expr(source)]
        if text.startswith("["):
            return [self.expr(part) for part in _split_top(text[1:-1])]
        call = re.fullmatch(r"(\w+)\((.*)\)", text, re.S)
        if call:
            function = _FUNCTIONS.get(call.group(1))
            if function is None:
                raise self.fail(f"function {call.group(1)}() is not supported")
            return function(*[self.expr(arg) for arg in _split_top(call.group(2))])
        if re.fullmatch(r"-?\d+(\.\d+)?", text):
            return float(text) if "." in text else int(text)
        if text in ("true", "false", "True", "False"):
            return text in ("true", "True")
        if text.startswith("{") and text.endswith("}"):
            return self._object(text)
        return self.reference(text)

    def _object(self, text: str) -> dict[str, Any]:
        """An object literal (python-hcl2 hands it over as a Python repr). Values this subset cannot
        evaluate stay as written: objects feed environment maps, where only resource names matter."""
        try:
            raw = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise PolicyExtractionError(f"object literal {text[:80]!r} cannot be read") from None
        result: dict[str, Any] = {}
        for key, value in raw.items():
            try:
                result[key] = self.template(value) if isinstance(value, str) else value
            except PolicyExtractionError:
                result[key] = value
        return result

    def reference(self, text: str) -> Any:
        match = _REF.match(text)
        if not match or match.group(0) not in self.names:
            raise self.fail(f"unknown reference {text!r}")
        value = self.names[match.group(0)]
        rest = text[match.end() :]
        path = match.group(0)
        while rest:
            if rest.startswith("."):
                attr = _REF.match(rest, 1)
                if not attr:
                    raise self.fail(f"cannot read {text!r}")
                key: Any = attr.group(0)
                rest = rest[attr.end() :]
            elif rest.startswith("["):
                depth, end = 0, 0
                for end, char in enumerate(rest):  # noqa: B007 (end is used after the loop)
                    depth += char == "["
                    depth -= char == "]"
                    if depth == 0:
                        break
                key = self.expr(rest[1:end])
                rest = rest[end + 1 :]
            else:
                raise self.fail(f"cannot read {text!r}")
            value = _get(value, key)
            path += f".{key}"
            if value is _MISSING:
                raise self.fail(f"unknown reference {text!r} (no {path})")
        return value

    def value(self, raw: Any) -> Any:
        """A parsed HCL value: strings are templates, lists and maps are walked."""
        if isinstance(raw, str):
            return self.template(raw)
        if isinstance(raw, list):
            return [self.value(item) for item in raw]
        if isinstance(raw, dict):
            return {k: self.value(v) for k, v in raw.items() if not k.startswith("__")}
        return raw


_MISSING = object()


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, Lazy):
        return value.get(key)
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    if isinstance(value, list) and isinstance(key, int):
        return value[key]
    return _MISSING


class Lazy:
    """A namespace whose members are HCL expressions evaluated on first use (locals, module variables)."""

    def __init__(self, raw: Mapping[str, Any], scope: Callable[[], Scope], defaults: Mapping[str, Any] = ()) -> None:
        self.raw = raw
        self.scope = scope
        self.defaults = dict(defaults)
        self.cache: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        if key not in self.cache:
            if key in self.raw:
                self.cache[key] = self.scope().value(_one(self.raw[key]))
            elif key in self.defaults:
                self.cache[key] = self.defaults[key]
            else:
                return _MISSING
        return self.cache[key]


# -- Terraform files -------------------------------------------------------------------------------


def _load(directory: Path) -> dict[str, Any]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        with path.open() as handle:
            for kind, items in hcl2.load(handle).items():
                merged.setdefault(kind, []).extend(items)
    return merged


def _locals(doc: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for block in doc.get("locals", []):
        out.update({k: v for k, v in block.items() if not k.startswith("__")})
    return out


def _one(value: Any) -> Any:
    """bc-python-hcl2 wraps each attribute value (not values nested in it) in a one-element list."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _variable_defaults(doc: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for block in doc.get("variable", []):
        for name, body in block.items():
            if "default" in body:
                out[name] = _one(body["default"])
    return out


def _policy_document(doc: Mapping[str, Any], name: str) -> dict[str, Any]:
    for data in doc.get("data", []):
        body = data.get("aws_iam_policy_document", {}).get(name)
        if body is not None:
            return body
    raise PolicyExtractionError(f"no data.aws_iam_policy_document.{name}")


def _flat(scope: Scope, raw: Any) -> list[str]:
    value = scope.value(raw)
    out: list[str] = []

    def walk(item: Any) -> None:
        if isinstance(item, list):
            for x in item:
                walk(x)
        else:
            out.append(str(item))

    walk(value)
    return out


def _statement(scope: Scope, body: Mapping[str, Any]) -> dict[str, Any]:
    unsupported = {"not_actions", "not_resources", "not_principals"} & set(body)
    if unsupported:
        raise scope.fail(f"statement attributes {sorted(unsupported)} are not supported")
    statement: dict[str, Any] = {"Effect": scope.value(_one(body.get("effect", "Allow")))}
    if "sid" in body:
        statement["Sid"] = scope.value(_one(body["sid"]))
    statement["Action"] = _flat(scope, body["actions"])
    statement["Resource"] = _flat(scope, body["resources"])
    for principal in body.get("principals", []):
        kind = scope.value(_one(principal["type"]))
        statement.setdefault("Principal", {}).setdefault(kind, []).extend(_flat(scope, principal["identifiers"]))
    for condition in body.get("condition", []):
        test = scope.value(_one(condition["test"]))
        variable = scope.value(_one(condition["variable"]))
        statement.setdefault("Condition", {}).setdefault(test, {})[variable] = _flat(scope, condition["values"])
    return statement


def _document(scope: Scope, body: Mapping[str, Any]) -> dict[str, Any]:
    statements = [_statement(scope, s) for s in body.get("statement", [])]
    for dynamic in body.get("dynamic", []):
        for label, block in dynamic.items():
            if label != "statement":
                raise scope.fail(f'dynamic "{label}" is not supported')
            items = scope.value(_one(block["for_each"]))
            iterator = scope.value(_one(block.get("iterator", "statement")))
            content = _one(block["content"])
            pairs = items.items() if isinstance(items, dict) else enumerate(items)
            for key, item in pairs:
                statements.append(_statement(scope.child(**{iterator: {"key": key, "value": item}}), content))
    # Terraform's data source puts the dynamic statements first only when they are first in the file;
    # order does not change an evaluation, so statements are sorted by Sid for stable output.
    statements.sort(key=lambda s: s.get("Sid", ""))
    return {"Version": "2012-10-17", "Statement": statements}


def _environment(functions: Scope, declared: Mapping[str, Any]) -> dict[str, str]:
    """The variables Terraform gives the functions (resource names and ARNs), merged: a test's own
    names for the same variables are mapped to these before evaluation."""
    merged = dict(functions.reference("var.common_environment"))
    for key in FUNCTION_KEYS:
        for name, value in (declared[key].get("environment") or {}).items():
            if merged.get(name, value) != value:
                raise PolicyExtractionError(f"functions disagree on {name}: {merged[name]!r} vs {value!r}")
            merged[name] = value
    return {k: str(v) for k, v in merged.items()}


def _encryption(terraform: Path) -> dict[str, str]:
    """The bucket and the alerts topic, if Terraform encrypts them with the customer managed key:
    S3 and SNS then call KMS as the caller, so the caller's policy must allow the key."""
    storage = seeded_modules()["storage"]
    key = storage["kms_key_arn"]
    found: dict[str, str] = {}
    for resource in _load(terraform / "modules" / "storage").get("resource", []):
        for config in resource.get("aws_s3_bucket_server_side_encryption_configuration", {}).values():
            for rule in config.get("rule", []):
                for default in rule.get("apply_server_side_encryption_by_default", []):
                    if _one(default.get("sse_algorithm")) == "aws:kms":
                        found[storage["bucket_arn"]] = key
    for resource in _load(terraform / "modules" / "monitoring").get("resource", []):
        for topic in resource.get("aws_sns_topic", {}).values():
            if topic.get("kms_master_key_id"):
                found[_arn("sns", f"{PREFIX}-alerts")] = key
    return found


def extract(terraform: Path = TERRAFORM) -> dict[str, Any]:
    root_doc = _load(terraform)
    modules = {name: body for block in root_doc.get("module", []) for name, body in block.items()}
    seeded = seeded_modules()

    root_scope: Scope

    def root() -> Scope:
        return root_scope

    root_names = {
        "var": Lazy({}, root, {**_variable_defaults(root_doc), "environment": ENVIRONMENT, "region": REGION}),
        "local": Lazy(_locals(root_doc), root),
        "data": DATA,
        "module": seeded,
    }
    root_scope = Scope(root_names, "terraform/main.tf")

    def module_scope(name: str, resources: Mapping[str, Any]) -> Scope:
        directory = terraform / "modules" / name
        doc = _load(directory)
        scope: Scope

        def own() -> Scope:
            return scope

        arguments = {
            k: v for k, v in modules[name].items() if k not in ("source", "providers") and not k.startswith("__")
        }
        names = {
            "var": Lazy(arguments, root, _variable_defaults(doc)),
            "local": Lazy(_locals(doc), own),
            "data": DATA,
            **resources,
        }
        scope = Scope(names, f"terraform/modules/{name}")
        scope.doc = doc  # type: ignore[attr-defined]
        return scope

    policies: dict[str, dict[str, Any]] = {}
    functions = module_scope("functions", {"aws_cloudwatch_log_group": _log_groups("/aws/lambda/", FUNCTION_KEYS)})
    declared = functions.reference("var.functions")
    if sorted(declared) != sorted(FUNCTION_KEYS):
        raise PolicyExtractionError(
            f"terraform/main.tf defines functions {sorted(declared)}, tests/iam/iam_policies.py knows "
            f"{sorted(FUNCTION_KEYS)}: update FUNCTION_KEYS"
        )
    body = _policy_document(functions.doc, "this")  # type: ignore[attr-defined]
    for key in FUNCTION_KEYS:
        each = {"key": key, "value": declared[key]}
        policies[f"lambda:{key}"] = _document(functions.child(each=each), body)
    environment = _environment(functions, declared)
    storage = module_scope("storage", {})
    compute = module_scope("compute", {})
    policies["job"] = _document(compute, _policy_document(compute.doc, "job"))  # type: ignore[attr-defined]
    orchestration = module_scope("orchestration", {})
    policies["states"] = _document(orchestration, _policy_document(orchestration.doc, "this"))  # type: ignore[attr-defined]
    return {
        "policies": policies,
        "environment": environment,
        "encryption": _encryption(terraform),
        # KMS consults the key policy first: it must delegate to IAM policies for them to count.
        "resource_policies": {
            seeded["storage"]["kms_key_arn"]: _document(storage, _policy_document(storage.doc, "kms"))
        },  # type: ignore[attr-defined]
        "function_arns": seeded["functions"]["function_arns"],
    }


if __name__ == "__main__":
    try:
        print(json.dumps(extract(Path(sys.argv[1]) if len(sys.argv) > 1 else TERRAFORM), indent=1, sort_keys=True))
    except PolicyExtractionError as exc:
        print(f"iam_policies: {exc}", file=sys.stderr)
        sys.exit(1)
