"""The workflow definition: model, loading from JSON/YAML, and validation that reports every problem.

The format is the seed recipe's (``name``, ``description``, ``global_config``, ``tasks[]``) with a few
documented extensions (``estimated_runtime``, ``timeout``, ``gpus``, ``queue``, ``checkpoint_interval`` per task,
``global_config.failure_mode`` and ``global_config.default_runtime``, and the data flow:
``tasks[].outputs``, ``tasks[].inputs`` and ``global_config.shared_filesystem``). The published JSON Schema
(``schema/workflow.schema.json``) is generated from these models by ``stepspot schema``.

Validation runs in two passes over the raw document so that one run reports everything: the field
pass (pydantic, strict types and ranges) and the graph pass (ids, dependencies, cycles, in ``dag.py``),
which looks at the raw ``id``/``depends_on`` values even when other fields of a task are wrong.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from stepspot import dag, dataflow, fleet
from stepspot._gc import gc_paused
from stepspot.capacity import QueueChoice
from stepspot.errors import Problem, WorkflowValidationError
from stepspot.workflow_limits import too_many_tasks

# Ids become S3 key parts and Step Functions execution-name parts (80 characters, no spaces or '/').
ID_PATTERN = r"^[A-Za-z0-9_-]{1,80}$"
ID_RE = re.compile(ID_PATTERN)
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
RESERVED_ENV_PREFIX = "AWS_BATCH"  # Batch sets these itself and refuses a job that sets one
DEFAULT_RUNTIME_SECONDS = 3600  # used when a task has no estimated_runtime (documented in the schema)

# Ranges: (minimum, maximum, unit/explanation) - the single source for Field bounds and messages.
RANGES: dict[str, tuple[float, float, str]] = {
    "vcpus": (1, 192, "vCPUs per node (the largest Batch instance types have 192)"),
    "memory": (128, 1_572_864, "MiB per node (128 MiB to 1.5 TiB)"),
    "nodes": (1, 256, "nodes; more than 1 makes a multi-node parallel (MPI) job"),
    "gpus": (0, 16, "GPUs per node"),
    "retry_attempts": (0, 10, "retries after the first attempt"),
    "max_retry_attempts": (0, 10, "retries after the first attempt"),
    "backoff_multiplier": (1.0, 10.0, "the factor by which the wait between retries grows"),
    "checkpoint_interval": (60, 86_400, 'seconds between checkpoints, or "auto"'),
    "estimated_runtime": (1, 30 * 86_400, "seconds"),
    "default_runtime": (1, 30 * 86_400, "seconds"),
    "timeout": (60, 14 * 86_400, "seconds (AWS Batch needs at least 60)"),
}


CheckpointInterval = Annotated[int, Field(ge=60, le=86_400)] | Literal["auto"]


def _bounded(name: str, default: Any = ..., description: str = "") -> Any:
    low, high, unit = RANGES[name]
    return Field(default, ge=low, le=high, description=f"{description} ({low}-{high} {unit})".strip())


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GlobalConfig(_Strict):
    """Settings that apply to every task unless the task overrides them."""

    checkpoint_interval: CheckpointInterval = Field(
        600,
        description='Seconds between periodic checkpoints (60-86400), or "auto" for the Young/Daly '
        "optimum computed from the measured upload time.",
    )
    max_retry_attempts: int = _bounded("max_retry_attempts", 3, "Default retry_attempts of a task")
    spot_strategy: Literal["diversified", "capacity-optimized", "on-demand-only"] = Field(
        "diversified",
        description="diversified: Spot over many instance types (price-capacity-optimized); "
        "capacity-optimized: Spot where capacity is deepest; on-demand-only: no Spot at all.",
    )
    failure_mode: Literal["fail", "continue"] = Field(
        "fail",
        description="Extension. fail: a task that fails for good fails the workflow at once; "
        "continue: independent branches run to the end, dependents of the failed task are skipped.",
    )
    default_runtime: int = _bounded(
        "default_runtime", DEFAULT_RUNTIME_SECONDS, "Extension. Estimated runtime of tasks that give none"
    )
    shared_filesystem: bool = Field(
        False,
        description="Extension. The tasks also see the deployment's shared file system (EFS) at its mount path "
        "(default /mnt/efs); refused at submit/local when the deployment has none.",
    )


class TaskInput(_Strict):
    """Extension. Files another task published (its declared outputs), copied in before the program starts."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    source: str = Field(..., alias="from", pattern=ID_PATTERN, description="Id of the producing task")
    path: str = Field(
        ...,
        min_length=1,
        description="One of the producer's declared outputs, or a file/glob inside a declared output directory",
    )
    to: str | None = Field(
        None, min_length=1, description="Destination relative to the working directory (default: path)"
    )

    def spec(self) -> dataflow.InputSpec:
        return dataflow.InputSpec(to=self.to or self.path, source=self.source, path=self.path)


class UriInput(_Strict):
    """Extension. An object (s3://bucket/key) or a prefix (s3://bucket/prefix/) copied in before the program starts."""

    uri: str = Field(
        ..., pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*$", description="s3://bucket/key or prefix/"
    )
    to: str = Field(..., min_length=1, description="Destination relative to the working directory")

    def spec(self) -> dataflow.InputSpec:
        return dataflow.InputSpec(to=self.to, uri=self.uri)


def _input_kind(value: Any) -> str:
    """The union's tag: an object with "uri" is a UriInput, anything else is read as a TaskInput."""
    if isinstance(value, UriInput) or (isinstance(value, dict) and "uri" in value):
        return "uri-input"
    return "task-input"


InputItem = Annotated[
    Annotated[TaskInput, Tag("task-input")] | Annotated[UriInput, Tag("uri-input")], Discriminator(_input_kind)
]
_INPUT_TAGS = ("task-input", "uri-input")


class Task(_Strict):
    """One containerised job of the workflow."""

    id: str = Field(..., pattern=ID_PATTERN, description="Unique id: letters, digits, '-', '_' (max 80)")
    name: str | None = Field(None, max_length=256, description="Human-readable name (defaults to the id)")
    type: Literal["batch"] = Field("batch", description="Task type; only AWS Batch jobs are supported")
    container_image: str = Field(..., min_length=1, max_length=512, description="Container image to run")
    command: list[str] = Field(..., min_length=1, description="Command and arguments (exec form)")
    vcpus: int = _bounded("vcpus", 1, "vCPUs per node")
    memory: int = _bounded("memory", 1024, "Memory per node in MiB")
    nodes: int = _bounded("nodes", 1, "Number of nodes; >1 runs a multi-node parallel (MPI) job on On-Demand")
    gpus: int = _bounded("gpus", 0, "Extension. GPUs per node")
    queue: QueueChoice = Field(
        "auto",
        description="Extension. Where the task runs: auto (Spot with On-Demand fallback; the GPU queues when "
        "gpus > 0; the multi-node queue when nodes > 1), gpu (the GPU Spot/On-Demand pair), or one queue of the "
        "deployment by name (spot, on-demand, mnp, gpu-spot, gpu-on-demand), which pins the task to it",
    )
    depends_on: list[str] = Field(default_factory=list, description="Ids of tasks that must finish first")
    environment: dict[Annotated[str, Field(pattern=ENV_NAME_PATTERN)], str] = Field(
        default_factory=dict, description="Environment variables (strings)"
    )
    checkpoint_enabled: bool = Field(False, description="Run under the checkpoint agent and resume from it")
    spot_enabled: bool = Field(True, description="Prefer Spot capacity (ignored for multi-node tasks)")
    retry_attempts: int | None = Field(
        None, ge=0, le=10, description="Retries after the first attempt (default: max_retry_attempts)"
    )
    backoff_multiplier: float = _bounded("backoff_multiplier", 2.0, "Growth of the wait between retries")
    checkpoint_interval: CheckpointInterval | None = Field(
        None, description="Extension. Overrides global_config.checkpoint_interval for this task"
    )
    estimated_runtime: int | None = Field(
        None, ge=1, le=30 * 86_400, description="Extension. Expected runtime in seconds (for estimates)"
    )
    timeout: int | None = Field(
        None, ge=60, le=14 * 86_400, description="Extension. Seconds after which an attempt is stopped"
    )
    outputs: list[str] = Field(
        default_factory=list,
        description="Extension. Files the task publishes when it succeeds, relative to its working directory: "
        "a file, a directory (trailing '/', recursive) or a glob (frames/*.xyz)",
    )
    inputs: list[InputItem] = Field(
        default_factory=list,
        description='Extension. Files copied in before the program starts: {"from": task, "path": output, "to": '
        'destination} (implies depends_on) or {"uri": "s3://bucket/key-or-prefix/", "to": destination}',
    )

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @property
    def all_dependencies(self) -> list[str]:
        """depends_on plus every task an input comes from (a data edge is a dependency)."""
        if not self.inputs:
            return self.depends_on
        producers = [i.source for i in self.inputs if isinstance(i, TaskInput)]
        return list(dict.fromkeys([*self.depends_on, *producers]))

    @property
    def input_specs(self) -> list[dataflow.InputSpec]:
        return [i.spec() for i in self.inputs]

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


class Workflow(_Strict):
    """A DAG of tasks. See docs and ``schema/workflow.schema.json``."""

    name: str = Field("Unnamed workflow", min_length=1, max_length=256)
    description: str = Field("", max_length=4096)
    global_config: GlobalConfig = Field(default_factory=GlobalConfig)  # type: ignore[arg-type]
    tasks: list[Task] = Field(..., min_length=1, description="The tasks; at least one")


@dataclass
class LoadedWorkflow:
    """A valid workflow and the warnings found while checking it."""

    workflow: Workflow
    warnings: list[Problem] = field(default_factory=list)
    source: str = "workflow definition"
    # The task graph validation built (integer-indexed, topologically ordered): build_plan reuses it.
    graph: dag.Graph | None = field(default=None, repr=False, compare=False)


# --------------------------------------------------------------------------- loading


def load_workflow_file(path: str | Path) -> LoadedWorkflow:
    """Read and validate a workflow file (.json, .yaml or .yml)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowValidationError(
            [Problem(str(path), "file not found: check the path (relative paths start at the current directory)")],
            source=str(path),
        ) from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        reasons: dict[type, str] = {IsADirectoryError: "is a directory", PermissionError: "is not readable"}
        reason = reasons.get(type(exc), "is not UTF-8 text")
        raise WorkflowValidationError(
            [Problem(str(path), f"{reason}: pass a JSON or YAML workflow file")], source=str(path)
        ) from None
    fmt = "yaml" if path.suffix.lower() in {".yaml", ".yml"} else "json" if path.suffix.lower() == ".json" else None
    return parse_workflow(text, source=str(path), fmt=fmt)


def parse_workflow(
    document: str | bytes | dict[str, Any] | Any, source: str = "workflow definition", fmt: str | None = None
) -> LoadedWorkflow:
    """Validate a workflow given as text (JSON or YAML) or as an already-decoded object."""
    data = _decode(document, source, fmt) if isinstance(document, str | bytes) else document
    with gc_paused():
        workflow, problems, graph = _check_document(data)
    if workflow is None:
        raise WorkflowValidationError(problems, source=source)
    return LoadedWorkflow(workflow, problems, source, graph)


def _decode(text: str | bytes, source: str, fmt: str | None) -> Any:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    if fmt is None:
        fmt = "json" if text.lstrip().startswith(("{", "[")) else "yaml"
    if not text.strip():
        raise WorkflowValidationError([Problem("$", "the definition is empty: write a workflow with tasks")], source)
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            raise WorkflowValidationError(
                [Problem(where, f"malformed JSON: {exc.msg}; fix the syntax there (a missing comma or quote?)")],
                source,
            ) from None
    import yaml  # only YAML definitions pay for it

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "$"
        raise WorkflowValidationError(
            [Problem(where, f"malformed YAML: {exc.problem}; fix the indentation or syntax there")], source
        ) from None
    except yaml.YAMLError as exc:
        raise WorkflowValidationError([Problem("$", f"malformed YAML: {exc}")], source) from None


# --------------------------------------------------------------------------- validation


def validate_document(data: Any) -> list[Problem]:
    """Every problem (errors, or warnings when there is no error) of a decoded document."""
    return check_document(data)[1]


def check_document(data: Any) -> tuple[Workflow | None, list[Problem]]:
    """(the workflow, its warnings) when valid, else (None, every error) - each in document order."""
    workflow, problems, _ = _check_document(data)
    return workflow, problems


def _check_document(data: Any) -> tuple[Workflow | None, list[Problem], dag.Graph | None]:
    """``check_document`` plus the task graph of a valid workflow."""
    if not isinstance(data, dict):
        kind = type(data).__name__ if data is not None else "nothing"
        return None, [Problem("$", f'the top level must be an object with "name" and "tasks", found {kind}')], None
    raw_tasks = data.get("tasks")
    if isinstance(raw_tasks, list) and (too_many := too_many_tasks(len(raw_tasks))):
        return None, [Problem("$.tasks", too_many)], None  # before building anything of a definition this large
    workflow: Workflow | None = None
    problems: list[Problem] = []
    try:
        workflow = Workflow.model_validate(data)
    except ValidationError as exc:
        # dict.fromkeys: a union field (int | "auto") reports one error per member; say it once.
        problems = list(dict.fromkeys(_sentence(error, data) for error in exc.errors(include_url=False)))
    graph: dag.Graph | None = None
    if isinstance(raw_tasks, list) and raw_tasks:
        nodes, with_data = _raw_graph(raw_tasks)
        graph, graph_problems = dag.check_graph(nodes)
        problems.extend(graph_problems)
        if with_data:
            problems.extend(_dataflow_problems(raw_tasks))
    if workflow is not None:
        limits, warned = _tasks_to_look_at(workflow)
        problems.extend(_service_limit_problems(workflow, limits))
    if problems or workflow is None:
        return None, sorted(problems, key=_document_position), None
    return workflow, _warnings(workflow, warned), graph


def _document_position(problem: Problem) -> tuple[int, int]:
    """Sort key: workflow-level problems first, then by task index; stable within a task."""
    match = re.search(r"tasks\[(\d+)\]", problem.location)
    return (1, int(match.group(1))) if match else (0, 0)


def _raw_graph(raw_tasks: list[Any]) -> tuple[list[dag.RawNode], bool]:
    """(index, id, raw depends_on plus known input producers) for every task whose id is a string, and
    whether any task has inputs or outputs (only then can ``_dataflow_problems`` find anything).

    A data edge is a dependency, so cycles through inputs are found (and printed) like dependency cycles;
    producers that are unknown or the task itself are left to ``_dataflow_problems``."""
    ids: set[Any] | None = None  # built on the first task with inputs (most workflows have none)
    graph = []
    with_data = False
    for index, task in enumerate(raw_tasks):
        if type(task) is not dict:
            continue
        has_inputs = "inputs" in task
        if has_inputs or "outputs" in task:
            with_data = True
        if type(task_id := task.get("id")) is str:
            deps = task.get("depends_on")
            if type(deps) is not list:
                deps = []
            if has_inputs and (producers := _raw_producers(task)):
                if ids is None:
                    ids = {t.get("id") for t in raw_tasks if type(t) is dict}
                deps = list(deps)  # the document's own list stays as it was
                for producer in producers:
                    if producer in ids and producer != task_id and producer not in deps:
                        deps.append(producer)
            graph.append((index, task_id, deps))
    return graph, with_data


def _raw_inputs(task: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    inputs = task.get("inputs")
    return [(i, item) for i, item in enumerate(inputs) if type(item) is dict] if type(inputs) is list else []


def _raw_producers(task: dict[str, Any]) -> list[str]:
    return [item["from"] for _, item in _raw_inputs(task) if type(item.get("from")) is str]


def _raw_outputs(task: dict[str, Any]) -> list[str]:
    outputs = task.get("outputs")
    return [o for o in outputs if type(o) is str] if type(outputs) is list else []


def _dataflow_problems(raw_tasks: list[Any]) -> list[Problem]:
    """Unknown producers, undeclared paths, unsafe paths and colliding destinations (raw document)."""
    # Only tasks with inputs or outputs can have a problem here: most workflows have none or few.
    with_data = [
        (index, task)
        for index, task in enumerate(raw_tasks)
        if type(task) is dict and ("inputs" in task or "outputs" in task)
    ]
    if not with_data:
        return []
    outputs_of: dict[str, list[str]] = {}
    for task in raw_tasks:
        if type(task) is dict and type(task.get("id")) is str:
            outputs_of.setdefault(task["id"], _raw_outputs(task))
    problems: list[Problem] = []
    for index, task in with_data:
        task_id = task.get("id")
        label = f" (task {task_id!r})" if type(task_id) is str else ""
        for out_index, declared in enumerate(_raw_outputs(task)):
            if problem := dataflow.path_problem(declared):
                problems.append(
                    Problem(
                        f"$.tasks[{index}].outputs[{out_index}]{label}",
                        f"output path {declared!r} {problem}: outputs are relative to the task's working "
                        "directory; write e.g. 'results/summary.json'",
                    )
                )
        destinations: dict[str, int] = {}
        for in_index, item in _raw_inputs(task):
            where = f"$.tasks[{index}].inputs[{in_index}]"
            source, path, to = item.get("from"), item.get("path"), item.get("to")
            for name, value in (("path", path), ("to", to)):
                if type(value) is str and (problem := dataflow.path_problem(value)):
                    problems.append(
                        Problem(
                            f"{where}.{name}{label}",
                            f"{name} {value!r} {problem}: input paths are relative to the working directory; "
                            "remove the leading '/' and any '..'",
                        )
                    )
            if type(source) is str and source == task_id:
                problems.append(
                    Problem(f"{where}.from{label}", f"task {task_id!r} takes an input from itself: remove this input")
                )
            elif type(source) is str and source not in outputs_of:
                problems.append(
                    Problem(
                        f"{where}.from{label}",
                        f"input from unknown task {source!r}: no task has this id; fix the id or add the task",
                    )
                )
            elif type(source) is str and type(path) is str and not dataflow.covered_by(outputs_of[source], path):
                declared = ", ".join(repr(o) for o in outputs_of[source]) or "nothing"
                problems.append(
                    Problem(
                        f"{where}.path{label}",
                        f"task {source!r} does not declare {path!r} as an output (it declares {declared}): add it "
                        f"to the outputs of {source!r} or fix the path",
                    )
                )
            target = to if type(to) is str else path if type(path) is str and "uri" not in item else None
            if target is not None:
                key = target.rstrip("/")
                if key in destinations:
                    problems.append(
                        Problem(
                            f"{where}.to{label}",
                            f"two inputs write {target!r} (also $.tasks[{index}].inputs[{destinations[key]}]): "
                            "give each input its own 'to'",
                        )
                    )
                else:
                    destinations[key] = in_index
    return problems


def _tasks_to_look_at(workflow: Workflow) -> tuple[list[int], list[int]]:
    """(tasks a SubmitJob limit may concern, tasks a warning may concern), as indices in document order,
    found in one pass: at 100k tasks, one look at each task instead of one per check (most tasks concern
    neither). SubmitJob: a task with an environment, inputs or outputs, or every task when the longest
    plain command might not fit (``fleet.plain_commands_fit``). Warnings: a task with an environment,
    inputs or outputs, several nodes or a timeout, or every task when an argument is under the shared mount."""
    tasks = workflow.tasks
    limits: list[int] = []
    warnings: list[int] = []
    entries = longest = 0
    for index, task in enumerate(tasks):  # hot loop: inline comparisons, no calls
        if task.environment or task.inputs or task.outputs:
            limits.append(index)
            warnings.append(index)
            continue
        command = task.command
        if len(command) > entries:
            entries = len(command)
        for argument in command:
            if len(argument) > longest:
                longest = len(argument)
        if task.nodes > 1 or task.timeout is not None:
            warnings.append(index)
    if not fleet.plain_commands_fit(entries, longest):
        limits = list(range(len(tasks)))
    if not workflow.global_config.shared_filesystem:
        mount = dataflow.DEFAULT_SHARED_MOUNT_PATH
        arguments = chain.from_iterable(map(attrgetter("command"), tasks))
        if any(map(str.startswith, arguments, repeat(mount))):  # one pass in C; usually no such argument
            warnings = list(range(len(tasks)))
    return limits, warnings


def _service_limit_problems(workflow: Workflow, indices: Iterable[int]) -> list[Problem]:
    """What AWS Batch's SubmitJob would refuse at run time, said now: reserved variable names, size.
    ``indices``: the tasks to look at (``_tasks_to_look_at``), in document order."""
    problems = []
    tasks = workflow.tasks
    for index in indices:
        task = tasks[index]
        for name in task.environment:
            if name.startswith(RESERVED_ENV_PREFIX):
                problems.append(
                    Problem(
                        f"$.tasks[{index}].environment.{name} (task {task.id!r})",
                        f"environment variable names starting with {RESERVED_ENV_PREFIX} are reserved by AWS "
                        "Batch, which refuses the job: rename the variable (for example without the AWS_ prefix)",
                    )
                )
        if fleet.submit_request_bytes_at_most(task) <= fleet.SUBMIT_JOB_MAX_BYTES:
            continue  # the common case: far below the limit, no request built
        size = fleet.submit_request_bytes(task)
        if size > fleet.SUBMIT_JOB_MAX_BYTES:
            problems.append(
                Problem(
                    f"$.tasks[{index}] (task {task.id!r})",
                    f"its AWS Batch SubmitJob request would be {size:,} bytes, over the {fleet.SUBMIT_JOB_MAX_BYTES:,}"
                    "-byte limit: shorten its command and environment (pass large values in a file the command "
                    "reads instead)",
                )
            )
    return problems


def _warnings(workflow: Workflow, indices: Iterable[int]) -> list[Problem]:
    """Warnings of a valid workflow; ``indices``: the tasks to look at (``_tasks_to_look_at``), in order."""
    warnings = []
    config = workflow.global_config
    spot_allowed = config.spot_strategy != "on-demand-only"
    mount = dataflow.DEFAULT_SHARED_MOUNT_PATH
    tasks = workflow.tasks
    # The location is formatted, and each value looked at, only when a warning is due.
    for index in indices:
        task = tasks[index]
        if task.nodes > 1 and task.spot_enabled and spot_allowed:
            warnings.append(
                Problem(
                    f"$.tasks[{index}] (task {task.id!r})",
                    f"runs on {task.nodes} nodes: AWS Batch multi-node parallel jobs cannot use Spot, so this "
                    'task is routed to On-Demand capacity (set "spot_enabled": false to silence this)',
                    "warning",
                )
            )
        if not config.shared_filesystem and _uses_path_under(mount, task):
            warnings.append(
                Problem(
                    f"$.tasks[{index}] (task {task.id!r})",
                    f"uses paths under {mount} but global_config.shared_filesystem is false: set it to true "
                    "(the deployment needs a shared file system) or pass the files as inputs/outputs",
                    "warning",
                )
            )
        timeout, runtime = task.timeout, task.estimated_runtime
        if timeout is not None and runtime is not None and timeout < runtime:
            warnings.append(
                Problem(
                    f"$.tasks[{index}] (task {task.id!r})",
                    f"timeout ({timeout} s) is shorter than estimated_runtime ({runtime} s): "
                    "attempts will be stopped before they are expected to finish",
                    "warning",
                )
            )
    return warnings


def _uses_path_under(mount: str, task: Task) -> bool:
    """A command argument or environment value that is ``mount`` or a path below it."""
    values = [*task.command, *task.environment.values()] if task.environment else task.command
    if not any(map(str.startswith, values, repeat(mount))):  # map over a C method: cheap for most tasks
        return False
    return any(value == mount or value.startswith(mount + "/") for value in values)


# --------------------------------------------------------------------------- pydantic errors -> sentences


def _json_path(loc: tuple[Any, ...]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _task_label(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    if len(loc) >= 2 and loc[0] == "tasks" and isinstance(loc[1], int):
        tasks = data.get("tasks")
        if isinstance(tasks, list) and loc[1] < len(tasks) and isinstance(tasks[loc[1]], dict):
            task_id = tasks[loc[1]].get("id")
            if isinstance(task_id, str):
                return f" (task {task_id!r})"
    return ""


_MODELS_BY_DEPTH: dict[str, type[BaseModel]] = {"tasks": Task, "global_config": GlobalConfig}
_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "string_type": "a string (in quotes)",
    "bool_type": "true or false",
    "list_type": "a list [...]",
    "dict_type": "an object {...}",
    "model_type": "an object {...}",
}


def _sentence(error: Any, data: dict[str, Any]) -> Problem:
    loc = tuple(error["loc"])
    is_key = bool(loc) and loc[-1] == "[key]"  # a dict key (environment variable name) failed
    loc = loc[:-1] if is_key else loc
    if "checkpoint_interval" in loc:  # union members (int | "auto") add their own loc parts: cut them
        loc = loc[: loc.index("checkpoint_interval") + 1]
    loc = tuple(part for part in loc if part not in _INPUT_TAGS)  # the inputs union's tags are not JSON paths
    kind, field_name = error["type"], next((p for p in reversed(loc) if isinstance(p, str)), "")
    location = _json_path(loc) + _task_label(loc, data)
    value = error.get("input")
    if kind == "missing":
        if loc == ("tasks",):
            message = 'missing: add "tasks": [ {...}, ... ] with at least one task'
        else:
            message = f'required field "{field_name}" is missing: add it'
    elif kind == "extra_forbidden":
        parent: type[BaseModel] = _MODELS_BY_DEPTH.get(str(loc[0]), Workflow) if len(loc) > 1 else Workflow
        if "inputs" in loc and len(loc) > loc.index("inputs") + 2:
            parent = _input_model(loc, data)
        known = list(parent.model_fields)
        close = difflib.get_close_matches(str(field_name), known, n=1)
        hint = f'did you mean "{close[0]}"?' if close else f"known fields: {', '.join(known)}"
        message = f'unknown field "{field_name}": remove it or fix its spelling ({hint})'
    elif field_name == "checkpoint_interval":
        message = f'{field_name} is {value!r}: use a whole number of seconds (60-86400) or "auto"'
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        low, high, unit = RANGES.get(str(field_name), (error["ctx"].get("ge"), error["ctx"].get("le"), ""))
        message = f"{field_name} is {value!r}, out of range: use {low} to {high} {unit}".rstrip()
    elif kind == "too_short" and field_name == "tasks":
        message = "no tasks: a workflow needs at least one task"
    elif kind == "too_short":
        message = f"{field_name} is empty: give at least one item" if isinstance(value, list) else error["msg"]
    elif kind == "string_too_short":
        message = f"{field_name} is empty: give a value"
    elif kind == "string_too_long":
        message = f"{field_name} is too long: at most {error['ctx']['max_length']} characters"
    elif kind == "string_pattern_mismatch" and field_name == "uri":
        message = f"uri {value!r} is not an S3 URI: write s3://bucket/key or s3://bucket/prefix/"
    elif kind == "string_pattern_mismatch" and field_name == "from":
        message = f"input from {value!r}: a task id uses only letters, digits, '-' and '_'; fix the id"
    elif kind == "string_pattern_mismatch" and field_name == "id":
        safe = re.sub(r"[^A-Za-z0-9_-]+", "-", str(value)).strip("-")[:80] or "task-1"
        message = (
            f"task id {value!r} cannot be used in S3 keys or Step Functions execution names: use only "
            f"letters, digits, '-' and '_', at most 80 characters (for example {safe!r})"
        )
    elif is_key:
        message = (
            f"environment variable name {field_name!r} is not valid: start with a letter or '_' and use "
            "only letters, digits and '_'"
        )
    elif kind == "literal_error":
        message = f"{field_name} is {value!r}: use one of {error['ctx']['expected']}"
    elif kind in _TYPE_WORDS or kind.endswith("_type") or kind.endswith("_parsing"):
        wanted = _TYPE_WORDS.get(kind, error["msg"].removeprefix("Input should be ").rstrip("."))
        if len(loc) >= 2 and loc[-2] == "environment":
            message = f"environment variable {loc[-1]} must be a string: quote the value ({value!r})"
        else:
            message = f"{field_name or 'value'} must be {wanted}, found {type(value).__name__} {value!r}"
    else:
        message = error["msg"]
    return Problem(location, message)


def _input_model(loc: tuple[Any, ...], data: dict[str, Any]) -> type[BaseModel]:
    try:
        item = data["tasks"][loc[1]]["inputs"][loc[loc.index("inputs") + 1]]
    except (KeyError, IndexError, TypeError):
        return TaskInput
    return UriInput if _input_kind(item) == "uri-input" else TaskInput


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of a workflow definition (generated from the models)."""
    schema = Workflow.model_json_schema(mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stepspot.dev/schema/workflow.schema.json",
        "title": "stepspot workflow definition",
        **schema,
    }
    return schema
