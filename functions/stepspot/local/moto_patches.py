"""Hooks and fixes that make moto's Step Functions interpreter run stepspot's state machines locally.

moto (pinned to 5.2.5 in pyproject.toml) runs ASL with a port of LocalStack's interpreter. We plug in:

- hooks: the interpreter's Lambda and Batch clients are replaced (``boto_client_for`` in the modules
  that call it) by the local engine's in-process Lambda runner and subprocess Batch; a handler's own
  ``lambda:Invoke`` of a run's function (the scheduler's fan-out continuations, the monitor's reports)
  reaches the same Lambda runner instead of moto's Lambda backend (local mode configures moto without
  Docker, whose "simple" backend answers every invocation with a canned success and runs nothing);
- ``NodeOverrides`` and ``PropagateTags`` added to the submitJob parameters moto forwards (multi-node
  parallel jobs; the cost allocation tags reach the ECS tasks), as the AWS integration accepts both;
- DynamoDB: operations serialised (moto's tables are not thread-safe) and transactions that back up only
  the items they touch (moto deep-copies the whole table per transaction item: O(n) per write); a table
  query reads its one partition (moto sorts every item of the table per query: O(table) per read); each
  update expression is parsed once (the validator's private copy comes from its pickle, so the parsed
  tree is never mutated), the validator's passes test node classes through a per-class memo (not an ABC
  ``isinstance`` per node) and its structure-only passes (clause count, overlapping paths, key
  attributes) run once per expression, names and table keys; a condition expression is lexed once; the
  item operations' results, already in DynamoDB's wire shape, are written as JSON directly (moto's
  model-driven serializer took 60-75 % of a GetItem/Query);
- per call: moto's listing of a response class's methods and botocore's user-agent sanitising (pure
  functions run for every request) are memoised; botocore's parameter validation is untouched;
- one botocore data loader per data path for the run (each session would parse endpoints.json and
  every service model again);
- execution ends: the engine hears of each execution whose status is set (``hooked(execution_ended=)``),
  to publish it as Step Functions publishes it to EventBridge;
- one parse per definition and per JSONPath: moto re-parses the ASL for every execution and every path
  for every evaluation (slow); both results are immutable; the interpreter's copies of state data (about
  30 of a task's input per execution) are made as copies of JSON data, not by ``copy.deepcopy``;
- time scaling: ``Wait`` states, ``Retry`` intervals and the ``.sync`` polling period are divided by the
  local time scale, so hour-long backoffs take moments;
- five fixes of 5.2.5 bugs (each guarded by ``check_patch_points`` and a test that fails when moto's
  internals move):
  1. a retried ``.sync`` task reused the closed callback endpoint of its first attempt and failed with
     ``States.Timeout``: the wrapper opens a fresh task token when the old endpoint is closed;
  2. a ``States.*`` error leaving a Map iteration or Parallel branch became ``States.Runtime``
     (``CustomErrorName`` rejects the prefix): those two call sites get an error name that accepts it;
  3. JSONata evaluation is wired to a JVM bridge that no longer exists: evaluating JSONata raises a
     clear error instead of hanging (stepspot's templates use JSONPath only; a test checks that).
  4. ``SendTaskFailure`` dropped its ``cause`` (the workflow's failure reason) in the API layer;
  5. ``SendTaskHeartbeat`` failed on any running execution whose worker had not started yet.

All of it holds only inside ``patched()`` (one local run): on exit every attribute gets moto's own value
back, so the rest of the process (the integration tests) uses the pinned moto unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import json
import pickle
import string
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import moto

EXPECTED_MOTO_VERSION = "5.2.5"

_lock = threading.Lock()
_state: dict[str, Any] = {"time_scale": 1.0, "clients": {}, "execution_ended": None}

_LAMBDA_UTILS = "moto.stepfunctions.parser.asl.component.state.exec.state_task.lambda_eval_utils"
_BATCH_SERVICE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_batch"
_CALLBACK_SERVICE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback"
_TASK_SERVICE = "moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service"
_RETRIER = "moto.stepfunctions.parser.asl.component.common.retry.retrier_decl"
_WAIT_FUNCTION = "moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function"
_MAP_WORKER = "moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.iteration_worker"
_PARALLEL = "moto.stepfunctions.parser.asl.component.state.exec.state_parallel.branches_decl"
_SFN_PARSER_MODELS = "moto.stepfunctions.parser.models"
_SFN_EXECUTION = "moto.stepfunctions.parser.backend.execution"
_JSONATA = "moto.stepfunctions.parser.asl.jsonata.jsonata"
_CUSTOM_ERROR = "moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name"
_PARSER = "moto.stepfunctions.parser.asl.parse.asl_parser"
_DYNAMODB = "moto.dynamodb.models"
_DYNAMODB_TABLE = "moto.dynamodb.models.table"
_DYNAMODB_AST = "moto.dynamodb.parsing.ast_nodes"
_DYNAMODB_TYPES = "moto.dynamodb.models.dynamo_type"
_BOTOCORE_USERAGENT = "botocore.useragent"
_BOTOCORE_SESSION = "botocore.session"
_DYNAMODB_VALIDATORS = "moto.dynamodb.parsing.validators"
_DYNAMODB_RESPONSES = "moto.dynamodb.responses"
_DYNAMODB_UTILITIES = "moto.dynamodb.models.utilities"
_DYNAMODB_COMPARISONS = "moto.dynamodb.comparisons"
_SFN_RESPONSES = "moto.stepfunctions.responses"
_JSON_PATH = "moto.stepfunctions.parser.asl.utils.json_path"
_CORE_RESPONSES = "moto.core.responses"
_RESULT_PATH = "moto.stepfunctions.parser.asl.component.common.path.result_path"
_SFN_STATES = "moto.stepfunctions.parser.asl.eval.states"
_SFN_STRING_EXPRESSION = "moto.stepfunctions.parser.asl.component.common.string.string_expression"
_SFN_EXECUTE_STATE = "moto.stepfunctions.parser.asl.component.state.exec.execute_state"
_SFN_EVENT_MANAGER = "moto.stepfunctions.parser.asl.eval.event.event_manager"
# Modules of moto's interpreter whose ``copy.deepcopy`` copies JSON data only (state inputs, outputs, stacks,
# history event details).
_SFN_JSON_COPIERS = (
    _SFN_STATES,
    _SFN_STRING_EXPRESSION,
    _SFN_EXECUTE_STATE,
    _RESULT_PATH,
    _TASK_SERVICE,
    _SFN_EVENT_MANAGER,
)
_LAMBDA_MODELS = "moto.awslambda.models"
_LAMBDA_SIMPLE_MODELS = "moto.awslambda_simple.models"
_DYNAMODB_OPERATIONS = (
    "put_item",
    "update_item",
    "delete_item",
    "get_item",
    "query",
    "scan",
    "batch_write_item",
    "batch_get_item",
    "transact_get_items",
    "transact_write_items",
)


class PatchPointMissing(RuntimeError):
    """moto's internals moved: the local engine's hooks would silently stop working."""


def _module(name: str) -> Any:
    import importlib

    return importlib.import_module(name)


def check_patch_points() -> None:
    """Raise ``PatchPointMissing`` unless every attribute the patches touch exists as expected."""
    if moto.__version__ != EXPECTED_MOTO_VERSION:
        raise PatchPointMissing(f"local mode is built for moto {EXPECTED_MOTO_VERSION}, found {moto.__version__}")
    expectations = [
        (_LAMBDA_UTILS, "boto_client_for"),
        (_BATCH_SERVICE, "boto_client_for"),
        (_SFN_PARSER_MODELS, "StepFunctionsParserBackend"),
        (_SFN_PARSER_MODELS, "CallbackNotifyConsumerError"),
        (_SFN_EXECUTION, "BaseExecutionWorkerCommunication"),
        (_BATCH_SERVICE, "_SUPPORTED_API_PARAM_BINDINGS"),
        (_CALLBACK_SERVICE, "StateTaskServiceCallback"),
        (_CALLBACK_SERVICE, "_DELAY_SECONDS_SYNC_CONDITION_CHECK"),
        (_TASK_SERVICE, "StateTaskService"),
        (_RETRIER, "time"),
        (_WAIT_FUNCTION, "WaitFunction"),
        (_MAP_WORKER, "CustomErrorName"),
        (_PARALLEL, "CustomErrorName"),
        (_CUSTOM_ERROR, "CustomErrorName"),
        (_PARSER, "AmazonStateLanguageParser"),
        (_DYNAMODB, "DynamoDBBackend"),
        (_SFN_RESPONSES, "StepFunctionResponse"),
        (_JSON_PATH, "parse"),
        (_RESULT_PATH, "parse"),
        *((module_name, "copy") for module_name in _SFN_JSON_COPIERS),
        (_SFN_RESPONSES, "EmptyResult"),
        (_DYNAMODB, "copy"),
        (_DYNAMODB, "UpdateExpressionParser"),
        (_DYNAMODB_RESPONSES, "UpdateExpressionParser"),
        (_DYNAMODB_RESPONSES, "copy"),
        (_DYNAMODB_RESPONSES, "dynamo_to_dict"),
        (_DYNAMODB_UTILITIES, "dynamo_to_dict"),
        (_DYNAMODB_AST, "Node"),
        (_DYNAMODB_TYPES, "Item"),
        (_DYNAMODB_COMPARISONS, "ConditionExpressionParser"),
        (_DYNAMODB_TABLE, "Table"),
        (_DYNAMODB_TYPES, "DynamoType"),
        (_DYNAMODB_TYPES, "LimitedSizeDict"),
        (_DYNAMODB_TYPES, "bytesize"),
        (_DYNAMODB_AST, "Node"),
        (_CORE_RESPONSES, "method_names_from_class"),
        (_BOTOCORE_USERAGENT, "sanitize_user_agent_string_component"),
        (_BOTOCORE_SESSION, "create_loader"),
        (_DYNAMODB_AST, "DepthFirstTraverser"),
        (_DYNAMODB_VALIDATORS, "deepcopy"),
        (_DYNAMODB_VALIDATORS, "ActionCountValidator"),
        (_DYNAMODB_VALIDATORS, "OverlappingPathsValidator"),
        (_DYNAMODB_VALIDATORS, "UpdateHashRangeKeyValidator"),
        (_CORE_RESPONSES, "ActionResult"),
        (_CORE_RESPONSES, "gen_amzn_requestid_long"),
        (_JSONATA, "eval_jsonata_expression"),
        (_JSONATA, "_eval_jsonata"),
        (_LAMBDA_MODELS, "LambdaBackend"),
        (_LAMBDA_SIMPLE_MODELS, "LambdaSimpleBackend"),
    ]
    for module_name, attribute in expectations:
        try:
            module = _module(module_name)
        except ImportError as exc:
            raise PatchPointMissing(f"{module_name} is gone ({exc})") from exc
        if not hasattr(module, attribute):
            raise PatchPointMissing(f"{module_name}.{attribute} is gone")
    wait_cls = _module(_WAIT_FUNCTION).WaitFunction
    if not hasattr(wait_cls, "_eval_body") or not hasattr(wait_cls, "_get_wait_seconds"):
        raise PatchPointMissing("WaitFunction no longer has _eval_body/_get_wait_seconds")
    for backend_cls in (_module(_LAMBDA_MODELS).LambdaBackend, _module(_LAMBDA_SIMPLE_MODELS).LambdaSimpleBackend):
        if "invoke" not in vars(backend_cls):
            raise PatchPointMissing(f"{backend_cls.__name__}.invoke is gone")
    if not hasattr(_module(_TASK_SERVICE).StateTaskService, "_eval_execution"):
        raise PatchPointMissing("StateTaskService._eval_execution is gone")
    backend = _module(_DYNAMODB).DynamoDBBackend
    for name in (*_DYNAMODB_OPERATIONS, "get_keys_value"):
        if not hasattr(backend, name):
            raise PatchPointMissing(f"DynamoDBBackend.{name} is gone")
    table_cls = _module(_DYNAMODB_TABLE).Table
    if not hasattr(table_cls, "all_items") or not hasattr(table_cls, "query"):
        raise PatchPointMissing("dynamodb Table.all_items/query is gone")
    condition_parser = _module(_DYNAMODB_COMPARISONS).ConditionExpressionParser
    for name in ("_lex_condition_expression", "parse"):
        if not hasattr(condition_parser, name):
            raise PatchPointMissing(f"ConditionExpressionParser.{name} is gone")
    if "stream_shard" not in table_cls.__init__.__code__.co_names:
        raise PatchPointMissing("dynamodb Table.stream_shard is gone")


class _ScaledTime:
    """Stands in for the ``time`` module inside the retrier: sleeps are divided by the time scale."""

    def __getattr__(self, name: str) -> Any:
        import time

        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        import time

        time.sleep(max(0.0, float(seconds)) / _state["time_scale"])


def _client_for(original: Callable[..., Any]) -> Callable[..., Any]:
    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        client = _state["clients"].get(service)
        if client is not None:
            return client
        return original(region=region, service=service, state_credentials=state_credentials)

    return boto_client_for


def _local_invoke(original: Callable[..., Any]) -> Callable[..., Any]:
    """moto's ``LambdaBackend.invoke`` for the handlers' own boto3 calls: a function of the run goes to
    the local engine's Lambda client (asynchronously for ``InvocationType=Event``), any other to moto."""

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> Any:
        client = _state["clients"].get("lambda")
        if client is None or not client.serves(function_name):
            return original(self, function_name, qualifier, body, headers, response_headers)
        answer = client.invoke(
            FunctionName=function_name,
            Payload=body,
            InvocationType=headers.get("X-Amz-Invocation-Type", "RequestResponse"),
        )
        if answer.get("FunctionError"):
            response_headers["x-amz-function-error"] = answer["FunctionError"]
        payload = answer["Payload"].read()
        response_headers["Content-Length"] = str(len(payload))
        return payload

    return invoke


class _StatesTolerantErrorName:
    """Factory used in place of ``CustomErrorName`` where moto wraps an error leaving a branch: a
    ``States.*`` name must keep its identity (fix 2)."""

    def __new__(cls, error_name: str | None) -> Any:
        custom = _module(_CUSTOM_ERROR)
        if error_name and error_name.startswith("States."):
            from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName

            class _Passthrough(ErrorName):
                def __init__(self, name: str) -> None:
                    super().__init__(error_name=name)

            return _Passthrough(error_name)
        return custom.CustomErrorName(error_name)


class _Patches:
    """What one ``patched()`` scope replaced in moto, to put moto's own back when it ends."""

    _MISSING = object()

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def replace(self, owner: Any, name: str, value: Any) -> None:
        """``setattr(owner, name, value)``, undone later (an attribute the class only inherited is deleted
        again rather than copied down)."""
        previous = vars(owner).get(name, self._MISSING)
        setattr(owner, name, value)
        if previous is self._MISSING:
            self._undo.append(lambda: delattr(owner, name))
        else:
            self._undo.append(lambda: setattr(owner, name, previous))

    def forget(self, memo: dict[Any, Any] | set[Any]) -> None:
        """Empty a memo of this scope when it ends (what it holds belongs to this run's patches)."""
        self._undo.append(memo.clear)

    def extend(self, target: set[str], items: set[str]) -> None:
        added = items - target
        target.update(added)
        self._undo.append(lambda: target.difference_update(added))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


_active: list[_Patches] = []  # the patches of the running scope (at most one)
_dynamodb_lock = threading.RLock()
# Memos kept across runs (both results are immutable): parsed programs by definition, compiled JSONPaths.
_parsed: dict[str, Any] = {}
_memoised_paths: dict[str, Callable[..., Any]] = {}


def is_patched() -> bool:
    return bool(_active)


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """moto as local mode needs it (hooks, time scaling, fixes) for the duration; every patch is undone
    on exit, so other moto users of the process (the integration tests) get the pinned moto as it is."""
    patches = _Patches()
    _share_botocore_loaders(patches)  # first: importing moto's modules makes a session
    try:
        check_patch_points()
    except BaseException:
        patches.undo()
        raise
    with _lock:
        if _active:
            patches.undo()
            raise RuntimeError("another local engine is running in this process")
        try:
            _apply(patches)
        except BaseException:
            patches.undo()
            raise
        _active.append(patches)
    try:
        yield
    finally:
        with _lock:
            _active.clear()
            _state["clients"] = {}
            _state["time_scale"] = 1.0
            _state["execution_ended"] = None
            patches.undo()


def _report_execution_ends(patches: _Patches) -> None:
    """Tell the engine when an execution ends (its status set), as Step Functions tells EventBridge."""
    communication = _module(_SFN_EXECUTION).BaseExecutionWorkerCommunication
    terminated = communication.terminated

    def report_terminated(self: Any) -> None:
        terminated(self)
        listener = _state["execution_ended"]
        if listener is not None:
            listener(self.execution)

    patches.replace(communication, "terminated", report_terminated)


def _share_botocore_loaders(patches: _Patches) -> None:
    """One botocore data loader per data path for the run. botocore gives each session its own loader,
    which parses endpoints.json (about 1 MB) and every service model again, and a local run makes six
    sessions (moto's, the engine's, the Lambdas'): a third of its start-up. What a loader returns is
    shared by every client of its session already, so sharing it across sessions changes nothing else."""
    session_module = _module(_BOTOCORE_SESSION)
    patches.replace(session_module, "create_loader", functools.lru_cache(maxsize=None)(session_module.create_loader))


def _apply(patches: _Patches) -> None:
    _report_execution_ends(patches)
    lambda_utils = _module(_LAMBDA_UTILS)
    batch_service = _module(_BATCH_SERVICE)
    patches.replace(lambda_utils, "boto_client_for", _client_for(lambda_utils.boto_client_for))
    patches.replace(batch_service, "boto_client_for", _client_for(batch_service.boto_client_for))
    for lambda_backend in (_module(_LAMBDA_MODELS).LambdaBackend, _module(_LAMBDA_SIMPLE_MODELS).LambdaSimpleBackend):
        patches.replace(lambda_backend, "invoke", _local_invoke(vars(lambda_backend)["invoke"]))

    patches.replace(_module(_RETRIER), "time", _ScaledTime())
    wait_cls = _module(_WAIT_FUNCTION).WaitFunction

    def _scaled_wait(self: Any, env: Any) -> None:
        seconds = self._get_wait_seconds(env=env)
        if seconds > 0:
            env.program_state_event.wait(seconds / _state["time_scale"])

    patches.replace(wait_cls, "_eval_body", _scaled_wait)

    # Fix 1: a fresh callback endpoint for each evaluation of a .sync/.waitForTaskToken task.
    callback_cls = _module(_CALLBACK_SERVICE).StateTaskServiceCallback
    original_eval_execution = _module(_TASK_SERVICE).StateTaskService._eval_execution

    def _eval_execution(self: Any, env: Any) -> None:
        task = env.states.context_object.context_object_data.get("Task")
        token = task.get("Token") if task else None
        endpoint = env.callback_pool_manager.get(token) if token else None
        closed = endpoint is not None and endpoint._notify_event.is_set() and endpoint.get_outcome() is None
        if self._is_integration_pattern() and (task is None or endpoint is None or closed):
            new_token = env.states.context_object.update_task_token()
            env.callback_pool_manager.add(new_token)
        original_eval_execution(self, env)

    patches.replace(callback_cls, "_eval_execution", _eval_execution)

    # moto forwards only the submitJob parameters it lists; multi-node jobs need NodeOverrides, and
    # every job PropagateTags (its cost allocation tags).
    patches.extend(batch_service._SUPPORTED_API_PARAM_BINDINGS["submitjob"], {"NodeOverrides", "PropagateTags"})

    # Fix 2: States.* errors keep their name when leaving Map iterations and Parallel branches.
    patches.replace(_module(_MAP_WORKER), "CustomErrorName", _StatesTolerantErrorName)
    patches.replace(_module(_PARALLEL), "CustomErrorName", _StatesTolerantErrorName)

    # Speed: moto parses the definition (ANTLR, ~0.15 s) on every StartExecution. The parsed program is
    # immutable (execution state lives in the Environment), so one parse per definition is enough.
    parser_cls = _module(_PARSER).AmazonStateLanguageParser
    original_parse = parser_cls.parse

    def _parse_once(definition: str) -> Any:
        program = _parsed.get(definition)
        if program is None:
            program = _parsed[definition] = original_parse(definition)
        return program

    patches.replace(parser_cls, "parse", staticmethod(_parse_once))
    # ... and each JSONPath is compiled once (jsonpath_ng builds a PLY parser per call, ~1 ms).
    for module_name in (_JSON_PATH, _RESULT_PATH):
        module = _module(module_name)
        memo = _memoised_paths.setdefault(module_name, functools.lru_cache(maxsize=4096)(module.parse))
        patches.replace(module, "parse", memo)

    # ... and the state data it copies at every step (about 30 copies of a task's input per execution) is
    # copied as the JSON it is, not by copy.deepcopy's generic walk (3.5x slower).
    for module_name in _SFN_JSON_COPIERS:
        patches.replace(_module(module_name), "copy", _JsonDataCopy())

    _apply_dynamodb_fixes(patches)

    # Fix 4: SendTaskFailure drops its cause in moto's API layer; the workflow's failure reason is in it.
    responses = _module(_SFN_RESPONSES)

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return responses.EmptyResult()

    patches.replace(responses.StepFunctionResponse, "send_task_failure", send_task_failure)

    # Fix 5: SendTaskHeartbeat walks every RUNNING execution and dies on one whose worker has not
    # started yet (no exec_worker or env); AWS answers the token's own execution. Skip those.
    parser_models = _module(_SFN_PARSER_MODELS)

    def send_task_heartbeat(self: Any, task_token: str) -> Any:
        for execution in self._get_executions(parser_models.ExecutionStatus.RUNNING):
            env = getattr(getattr(execution, "exec_worker", None), "env", None)
            if env is None:
                continue
            try:
                if env.callback_pool_manager.heartbeat(callback_id=task_token):
                    return None
            except parser_models.CallbackNotifyConsumerError as consumer_error:
                if isinstance(consumer_error, parser_models.CallbackConsumerTimeout):
                    raise parser_models.TaskTimedOut() from None
                raise parser_models.TaskDoesNotExist() from None
        raise parser_models.InvalidToken()

    patches.replace(parser_models.StepFunctionsParserBackend, "send_task_heartbeat", send_task_heartbeat)

    # Fix 3: JSONata has no evaluator in 5.2.5; fail fast with a clear message.
    def _no_jsonata(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(
            "JSONata is not supported by stepspot's local mode: write states in JSONPath (stepspot's templates do)"
        )

    # the lazily bound evaluator every JSONata call goes through
    patches.replace(_module(_JSONATA), "_eval_jsonata", _no_jsonata)


def json_data_copy(value: Any, memo: Any = None) -> Any:
    """A deep copy of JSON data (dicts, lists, strings, numbers, booleans, None); anything else inside is
    copied by ``copy.deepcopy``. JSON values have no identity, so no memo of shared objects is kept."""
    kind = type(value)
    if kind is dict:
        return {key: json_data_copy(item) for key, item in value.items()}
    if kind is list:
        return [json_data_copy(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


class _JsonDataCopy:
    """Stands in for the ``copy`` module inside moto's interpreter modules that copy state data."""

    deepcopy = staticmethod(json_data_copy)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


class _NoTableBackup:
    """Stands in for ``copy`` inside moto's transact_write_items, whose whole-table deepcopy makes every
    transaction O(table size); ``_apply_dynamodb_fixes`` backs up the touched items instead (of tables
    without a stream: a stream's records are rolled back with moto's whole-table copy, as before)."""

    @staticmethod
    def deepcopy(value: Any, memo: Any = None) -> Any:
        return value


def _apply_dynamodb_fixes(patches: _Patches) -> None:
    """DynamoDB in moto: one operation at a time (DynamoDB is linearizable per item; moto's in-memory
    tables are not thread-safe, and the Lambdas run concurrently), and transactions that back up and
    restore only the items they touch."""
    models = _module(_DYNAMODB)
    backend_cls = models.DynamoDBBackend

    def serialised(method: Callable[..., Any]) -> Callable[..., Any]:
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            with _dynamodb_lock:
                return method(self, *args, **kwargs)

        return run

    original_transact = backend_cls.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        backups = []
        for entry in transact_items:
            for _, op in entry.items():
                table = self.tables.get(op.get("TableName"))
                if table is None:
                    continue
                if table.stream_shard is not None:  # moto's whole-table backup also rolls back its stream
                    return original_transact(self, transact_items)
                key_names = {table.hash_key_attr, table.range_key_attr}
                keys = op.get("Key") or {k: v for k, v in (op.get("Item") or {}).items() if k in key_names}
                try:
                    hash_key, range_key = self.get_keys_value(table, keys)
                except Exception:  # moto reports the malformed key itself
                    continue
                current = table.get_item(hash_key, range_key)
                attrs = json_data_copy(current.to_json()["Attributes"]) if current is not None else None
                backups.append((table, hash_key, range_key, attrs))
        item_copier = models.copy
        models.copy = _NoTableBackup  # for this call only, under the lock
        try:
            return original_transact(self, transact_items)
        except Exception:
            for table, hash_key, range_key, attrs in reversed(backups):
                table.delete_item(hash_key, range_key)
                if attrs is not None:
                    table.put_item(attrs)
            raise
        finally:
            models.copy = item_copier

    for name in _DYNAMODB_OPERATIONS:
        method = transact_write_items if name == "transact_write_items" else getattr(backend_cls, name)
        patches.replace(backend_cls, name, serialised(method))
    _install_dynamodb_speedups(patches, models)


def _install_dynamodb_speedups(patches: _Patches, models: Any) -> None:
    """Same results, less work: a table query walks its own partition, not the whole sorted table
    (moto's ``Table.query`` calls ``all_items()`` and keeps the items of one hash key, so the local
    scheduler's queries grew with everything the run wrote); an update expression is parsed once."""
    table_cls = _module(_DYNAMODB_TABLE).Table
    original_all_items = table_cls.all_items
    original_query = table_cls.query
    partition = threading.local()  # the hash key of the table query running in this thread

    def all_items(self: Any) -> list[Any]:
        wanted = getattr(partition, "key", None)
        if wanted is None or wanted[0] is not self:
            everything: list[Any] = original_all_items(self)
            return everything
        found = self.items.get(wanted[1])  # get: no insert into the defaultdict
        if found is None:
            return []
        items = list(found.values()) if self.range_key_attr else [found]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        if index_name or hash_key is None:  # an index query needs every item: moto's own path
            return original_query(self, hash_key, *args, **kwargs)
        partition.key = (self, hash_key)
        try:
            return original_query(self, hash_key, *args, **kwargs)
        finally:
            partition.key = None

    patches.replace(table_cls, "all_items", all_items)
    patches.replace(table_cls, "query", query)
    _size_items_without_copies(patches)

    parser_cls = models.UpdateExpressionParser
    parse_once = functools.lru_cache(maxsize=1024)(parser_cls.make)

    def make(expression: str) -> Any:
        tree = parse_once(expression)
        if id(tree) not in _ast_blobs:  # the validator's private copy of this tree is built from the blob
            _ast_blobs[id(tree)] = (tree, pickle.dumps(tree, pickle.HIGHEST_PROTOCOL))
        return tree

    class _ParsedOnce(parser_cls):  # type: ignore[misc, valid-type]
        pass

    _ParsedOnce.make = staticmethod(make)
    patches.replace(models, "UpdateExpressionParser", _ParsedOnce)
    patches.replace(_module(_DYNAMODB_RESPONSES), "UpdateExpressionParser", _ParsedOnce)  # its own first parse
    _lex_conditions_once(patches)
    _find_clauses_once(patches)
    _results_to_dicts_in_one_walk(patches)
    _parse_conditions_once(patches)
    _copy_items_only_when_read(patches, models)
    patches.forget(_ast_blobs)  # the trees parse_once returns live as long as this run
    patches.forget(_structure_passed)
    patches.forget(_tree_classes)
    _install_update_validator_speedups(patches)

    # The results of the item operations are plain dicts already in the wire shape (AttributeValue maps,
    # PascalCase members); DynamoDB speaks JSON 1.0, so json.dumps is the serializer's output. Anything
    # else (other operations, a member the output shape does not name, a value JSON cannot hold) goes
    # through moto's serializer as before.
    action_result = _module(_CORE_RESPONSES).ActionResult
    original_execute = action_result.execute_result

    def execute_result(self: Any, context: Any) -> Any:
        result = self.result
        operation = context.operation_model
        if (
            isinstance(result, dict)
            and context.service_model.service_name == "dynamodb"
            and operation.name in _DYNAMODB_WIRE_RESULTS
            and all(key in operation.output_shape.members for key in result)
        ):
            try:
                body = json.dumps(result)
            except (TypeError, ValueError):
                return original_execute(self, context)
            return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
        return original_execute(self, context)

    patches.replace(action_result, "execute_result", execute_result)
    _install_per_call_speedups(patches)


def _size_items_without_copies(patches: _Patches) -> None:
    """An item's size (checked against the 400 KB limit before every attribute an update sets, so computed
    over the whole item once per SET action) is summed by the same rules as ``DynamoType.size`` without
    wrapping every set element and map value in a new ``DynamoType`` first (moto re-wraps whole maps)."""
    types = _module(_DYNAMODB_TYPES)
    dynamo_type, bytesize = types.DynamoType, types.bytesize
    sets = {"SS", "NS", "BS"}

    def size_of(value: Any) -> int:
        if type(value) is not dynamo_type:
            value = dynamo_type(value)  # a plain {"S": ...} member, as moto's own size() would wrap it
        kind, data = value.type, value.value
        if kind == "N":
            return len(str(data))
        if kind in sets:
            if kind == "NS":
                return sum(len(str(member)) for member in data)
            return sum(1 if isinstance(member, bool) else bytesize(member) for member in data)
        if kind == "L":
            return sum(size_of(member) for member in data)
        if kind == "M":
            return sum(bytesize(key) + size_of(member) for key, member in data.items())
        if isinstance(data, bool):
            return 1
        return int(bytesize(data))

    limited = types.LimitedSizeDict
    limit_check = limited.__setitem__

    def set_checked(self: Any, key: str, value: Any) -> None:
        if type(value) is not dynamo_type or type(key) is not str:
            limit_check(self, key, value)  # something moto's rules size differently: its own check
            return
        current = 0
        for name, member in self.items():  # one pass; strings and numbers (most attributes) inline
            if type(member) is not dynamo_type or type(name) is not str:
                limit_check(self, key, value)
                return
            kind = member.type
            if kind == "S" and type(member.value) is str:
                current += len(name.encode()) + len(member.value.encode())
            elif kind == "N":
                current += len(name.encode()) + len(str(member.value))
            else:
                current += len(name.encode()) + size_of(member)
        if current + bytesize(key) + size_of(value) > 405000:  # moto's limit (its comment: 409-410 KB on AWS)
            raise types.ItemSizeTooLarge
        dict.__setitem__(self, key, value)

    patches.replace(dynamo_type, "size", size_of)
    patches.replace(limited, "__setitem__", set_checked)


def _lex_conditions_once(patches: _Patches) -> None:
    """A condition expression is split into tokens once per text (moto lexes it twice per conditional
    write, with a dozen regular expressions per token): the tokens are immutable (named tuples with no
    children), and every parse gets its own deque of them. Names and values are resolved after lexing,
    per call, as before; a text that does not lex raises every time."""
    parser_cls = _module(_DYNAMODB_COMPARISONS).ConditionExpressionParser
    original = parser_cls._lex_condition_expression
    lexed: dict[str, tuple[Any, ...]] = {}

    def lex(self: Any) -> Any:
        text = self.condition_expression
        tokens = lexed.get(text)
        if tokens is None:
            tokens = tuple(original(self))
            if len(lexed) < 4096:
                lexed[text] = tokens
        return collections.deque(tokens)

    patches.replace(parser_cls, "_lex_condition_expression", lex)


def _find_clauses_once(patches: _Patches) -> None:
    """moto's UpdateItem response layer searches the parsed expression twice per call for the names and
    values it uses. A parsed expression (cached, never changed: the validator works on its own copy) gives
    the same nodes every time: searched once per expression and kinds, each caller gets its own list."""
    node_cls = _module(_DYNAMODB_AST).Node
    original = node_cls.find_clauses
    found: dict[tuple[int, tuple[type, ...]], list[Any]] = {}

    def find_clauses(self: Any, clause_types: Any) -> Any:
        cached = _ast_blobs.get(id(self))
        if cached is None or cached[0] is not self:
            return original(self, clause_types)
        key = (id(self), tuple(clause_types))
        clauses = found.get(key)
        if clauses is None:
            clauses = found[key] = original(self, clause_types)
        return list(clauses)

    patches.replace(node_cls, "find_clauses", find_clauses)
    patches.forget(found)


def _results_to_dicts_in_one_walk(patches: _Patches) -> None:
    """moto turns each DynamoDB result into plain data with ``dynamo_to_dict``, which asks every string and
    number of the result whether it is a datetime, a ``DynamoType`` and has ``to_json``. Strings, numbers,
    booleans, None, dicts, lists and non-binary ``DynamoType`` values (all of an item's, but its binary
    ones) are answered here, the same; anything else goes to moto's function (whose own recursion comes
    back here)."""
    utilities = _module(_DYNAMODB_UTILITIES)
    original = utilities.dynamo_to_dict
    plain = (str, int, float, bool, type(None))
    dynamo_type = _module(_DYNAMODB_TYPES).DynamoType

    def dynamo_to_dict(obj: Any) -> Any:
        kind = type(obj)
        if kind in plain:
            return obj
        if kind is dict:
            return {key: dynamo_to_dict(value) for key, value in obj.items()}
        if kind is list:
            return [dynamo_to_dict(value) for value in obj]
        if kind is dynamo_type and obj.type != "B" and obj.type != "BS":  # binary: moto decodes base64
            return {obj.type: dynamo_to_dict(obj.value)}
        return original(obj)

    patches.replace(utilities, "dynamo_to_dict", dynamo_to_dict)
    patches.replace(_module(_DYNAMODB_RESPONSES), "dynamo_to_dict", dynamo_to_dict)


def _parse_conditions_once(patches: _Patches) -> None:
    """A condition expression is parsed once per text, names and values: moto parses an UpdateItem's
    condition twice per request (its response layer checks the names and values used, the backend
    evaluates it) and a transaction item's three times, and the scheduler's conditions recur with the same
    values (``attribute_not_exists(pk)``, ``#s = :wf_running AND #r < :max``). The parsed operator tree is
    a function of those three and immutable (evaluating it reads the item and the tree); each parse gets
    the same lists of names and values found. Values JSON cannot hold (binary) are parsed every time, and
    a condition that does not parse raises every time."""
    parser_cls = _module(_DYNAMODB_COMPARISONS).ConditionExpressionParser
    original = parser_cls.parse
    parsed: dict[tuple[str, str, str], tuple[Any, tuple[str, ...], tuple[str, ...]]] = {}

    def parse(self: Any) -> Any:
        text = self.condition_expression
        if not text:
            return original(self)
        try:
            key = (
                text,
                json.dumps(self.expression_attribute_names, sort_keys=True),
                json.dumps(self.expression_attribute_values, sort_keys=True),
            )
        except (TypeError, ValueError):
            return original(self)
        hit = parsed.get(key)
        if hit is not None:
            self.expr_attr_names_found = list(hit[1])
            self.expr_attr_values_found = list(hit[2])
            return hit[0]
        tree = original(self)
        if len(parsed) >= 2048:
            parsed.clear()
        parsed[key] = (tree, tuple(self.expr_attr_names_found), tuple(self.expr_attr_values_found))
        return tree

    patches.replace(parser_cls, "parse", parse)
    patches.forget(parsed)


class _ItemSnapshot:
    """What moto's UpdateItem response reads of its copy of the item before the update: ``to_json()``,
    taken when the copy would have been made (``Item.to_json`` builds new lists and maps all the way down;
    its leaves are strings, numbers and bytes)."""

    def __init__(self, item: Any) -> None:
        self._json = item.to_json()

    def to_json(self) -> dict[str, Any]:
        snapshot: dict[str, Any] = self._json
        return snapshot


def _copy_items_only_when_read(patches: _Patches, models: Any) -> None:
    """An UpdateItem deep-copied the whole item twice before changing it: the response layer to report the
    old values (it only reads the copy's ``to_json()``: an ``_ItemSnapshot`` of it is the same data), and
    the backend for the table's stream (kept without a stream too: no copy then, as nothing reads it)."""
    item_cls = _module(_DYNAMODB_TYPES).Item

    class _SnapshotCopy:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if type(value) is item_cls:
                return _ItemSnapshot(value)
            return copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    patches.replace(_module(_DYNAMODB_RESPONSES), "copy", _SnapshotCopy())

    no_stream = threading.local()  # set while an update of an item of a table without a stream runs

    class _StreamCopy:
        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            if type(value) is item_cls and getattr(no_stream, "update", False):
                return value  # orig_item: read only by the table's stream, which it has not
            return copy.deepcopy(value, memo)

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

    backend_cls = models.DynamoDBBackend
    original_update = backend_cls.update_item

    def update_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        table = self.tables.get(table_name)
        previous = getattr(no_stream, "update", False)
        no_stream.update = table is not None and table.stream_shard is None
        try:
            return original_update(self, table_name, *args, **kwargs)
        finally:
            no_stream.update = previous

    patches.replace(models, "copy", _StreamCopy())
    patches.replace(backend_cls, "update_item", update_item)


def _install_per_call_speedups(patches: _Patches) -> None:
    """What every in-process AWS call runs, made cheaper for the run: moto lists its response class's
    methods (``inspect.getmembers``) to dispatch each request and botocore sanitises each user-agent
    component character by character (about 90 per request): both pure, memoised; moto draws each
    response's request id one character at a time. Parameter validation and parsing are untouched."""
    responses = _module(_CORE_RESPONSES)
    patches.replace(
        responses, "method_names_from_class", functools.lru_cache(maxsize=None)(responses.method_names_from_class)
    )
    # A request id is 52 random letters and digits: one draw of 52 from moto's (seedable) random, not 52 draws.
    from moto.moto_api._internal import mock_random

    alphabet = string.ascii_letters + string.digits

    def gen_amzn_requestid_long(headerdict: dict[str, Any] | None = None) -> str:
        request_id = "".join(mock_random.choices(alphabet, k=52))
        if isinstance(headerdict, dict):
            headerdict["x-amzn-requestid"] = request_id
        return request_id

    patches.replace(responses, "gen_amzn_requestid_long", gen_amzn_requestid_long)
    useragent = _module(_BOTOCORE_USERAGENT)
    patches.replace(
        useragent,
        "sanitize_user_agent_string_component",
        functools.lru_cache(maxsize=4096)(useragent.sanitize_user_agent_string_component),
    )


_ast_blobs: dict[int, tuple[Any, bytes]] = {}  # id(parsed update expression) -> (the tree, its pickle)
_copied_from: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # validator copy -> its tree
_structure_passed: set[tuple[Any, int, Any]] = set()  # (check, parsed tree, what else it read) that passed


def _names_key(names: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((names or {}).items()))


def _check_structure_once(patches: _Patches, check_cls: Any, reads: Callable[[Any], Any]) -> None:
    """Run the structure-only validator pass ``check_cls`` once per parsed tree and ``reads(check)`` (the
    other inputs it depends on); later copies of a tree that passed skip it."""
    original = check_cls.traverse

    def traverse(self: Any, node: Any) -> Any:
        source = _copied_from.get(node)
        if source is None:
            return original(self, node)
        key = (check_cls, source, reads(self))
        if key in _structure_passed:
            return node
        checked = original(self, node)
        _structure_passed.add(key)
        return checked

    patches.replace(check_cls, "traverse", traverse)


_tree_classes: dict[int, frozenset[type]] = {}  # id(parsed update expression) -> the node classes in it


def _may_hold(root: Any, wanted: tuple[type, ...], introduced: tuple[type, ...]) -> bool:
    """Whether a validator copy ``root`` can hold a node of the ``wanted`` classes: one of its parsed
    expression (every node, counted once per expression) or one an earlier pass put in. Unknown trees: yes."""
    source = _copied_from.get(root)
    if source is None:
        return True
    classes = _tree_classes.get(source)
    if classes is None:
        found: set[type] = set()
        pending = [_ast_blobs[source][0]]
        while pending:
            node = pending.pop()
            found.add(type(node))
            pending.extend(child for child in (getattr(node, "children", None) or ()) if child is not None)
        classes = _tree_classes[source] = frozenset(found)
    return any(issubclass(kind, wanted) for kind in (*classes, *introduced))


def _copy_tree(value: Any, memo: Any = None) -> Any:
    """``deepcopy`` of moto's update validator: a parsed expression's private copy comes from its pickle
    (same object graph, about 4x faster than deepcopy); anything else is deep-copied as before."""
    cached = _ast_blobs.get(id(value))
    if cached is not None and cached[0] is value:
        tree = pickle.loads(cached[1])
        _copied_from[tree] = id(value)
        return tree
    return copy.deepcopy(value, memo)


def _install_update_validator_speedups(patches: _Patches) -> None:
    """moto validates an update expression with ten depth-first passes, each asking ``isinstance`` of an
    ABC (slow) for every node twice. The same walk, with those answers memoised per node class (a class's
    ABC subclass relations never change: moto registers no virtual subclasses), gives the same tree."""
    nodes = _module(_DYNAMODB_AST)
    node_cls, traverser_cls = nodes.Node, nodes.DepthFirstTraverser
    base_process, base_pre = traverser_cls.process, traverser_cls.pre_processing_of_child
    is_node: dict[type, bool] = {}
    processed: dict[tuple[type, type], bool] = {}
    introduced = (nodes.DDBTypedValue, nodes.NoneExistingPath)  # what passes put into a tree

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        # Per pass, once: its hook (most passes keep the base no-op, called per child otherwise) and its
        # processing map (moto's ``process`` builds the map again for every node it processes).
        pass_cls = type(self)
        pre = None if pass_cls.pre_processing_of_child is base_pre else self.pre_processing_of_child
        handlers = list(self._processing_map().items()) if pass_cls.process is base_process else None
        wanted_classes = self.nodes_to_be_processed()
        if pre is None and child_id == -1 and not _may_hold(node, wanted_classes, introduced):
            return node  # nothing this pass processes is in the tree: the walk would change nothing

        def walk(node: Any, child_id: int) -> Any:
            kind = type(node)
            node_kind = is_node.get(kind)
            if node_kind is None:
                node_kind = is_node[kind] = issubclass(kind, node_cls)
            if not node_kind:
                return node
            parent_node = node.parent
            children = node.children
            if children is not None:
                for i, child_node in enumerate(children):
                    if pre is not None:
                        pre(node, i)
                    walk(child_node, i)
            key = (pass_cls, kind)
            wanted = processed.get(key)
            if wanted is None:
                wanted = processed[key] = issubclass(kind, wanted_classes)
            if wanted:
                if handlers is None:
                    node = self.process(node)
                else:
                    for class_key, processor in handlers:  # moto's ``process``: the first class that matches
                        if isinstance(node, class_key):
                            node = processor(node)
                            break
                    else:
                        node = None
                node.parent = parent_node
                if parent_node:
                    parent_node.children[child_id] = node
            return node

        return walk(node, child_id)

    patches.replace(nodes.DepthFirstTraverser, "traverse_node_recursively", traverse_node_recursively)

    # Three passes read only the expression's structure (and the names it maps, the table's keys): the
    # clause count (at most one SET/ADD/REMOVE clause, quadratic: three subtree searches at every clause
    # node), overlapping or duplicate paths (a subtree search at every node) and the key-attribute check.
    # They are the validator's first passes, so they see the fresh copy: once a parsed expression passed
    # with the same names and keys, its copies pass. A failing expression is checked (and fails) every time.
    validators = _module(_DYNAMODB_VALIDATORS)
    _check_structure_once(patches, validators.ActionCountValidator, lambda check: ())
    _check_structure_once(
        patches, validators.OverlappingPathsValidator, lambda check: _names_key(check.expression_attribute_names)
    )
    _check_structure_once(
        patches,
        validators.UpdateHashRangeKeyValidator,
        lambda check: (_names_key(check.expression_attribute_names), tuple(check.table_key_attributes)),
    )
    patches.replace(_module(_DYNAMODB_VALIDATORS), "deepcopy", _copy_tree)
    _validate_by_plan(patches)


# Operations whose moto results are plain data in DynamoDB's JSON wire shape (see _install_dynamodb_speedups).
_DYNAMODB_WIRE_RESULTS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "TransactGetItems",
        "TransactWriteItems",
        "BatchWriteItem",
    }
)


@contextlib.contextmanager
def hooked(
    lambda_client: Any,
    batch_client: Any,
    time_scale: float,
    sync_poll_seconds: float,
    execution_ended: Callable[[Any], None] | None = None,
) -> Iterator[None]:
    """Route the interpreter's Lambda and Batch calls to the local engine for the duration, within
    ``patched()`` (entered here, and left on exit, when the caller is not in it already);
    ``execution_ended`` hears of each execution that ends (moto's execution object, status set)."""
    with contextlib.ExitStack() as scope:
        if not is_patched():
            scope.enter_context(patched())
        callback_module = _module(_CALLBACK_SERVICE)
        previous_poll = callback_module._DELAY_SECONDS_SYNC_CONDITION_CHECK
        with _lock:
            if _state["clients"]:
                raise RuntimeError("another local engine is running in this process")
            _state["clients"] = {"lambda": lambda_client, "batch": batch_client}
            _state["time_scale"] = float(time_scale)
            _state["execution_ended"] = execution_ended
            callback_module._DELAY_SECONDS_SYNC_CONDITION_CHECK = sync_poll_seconds
        try:
            yield
        finally:
            with _lock:
                _state["clients"] = {}
                _state["time_scale"] = 1.0
                _state["execution_ended"] = None
                callback_module._DELAY_SECONDS_SYNC_CONDITION_CHECK = previous_poll


Position = tuple[int, ...]  # child indexes from the root of an update expression's tree


@dataclasses.dataclass(frozen=True)
class _ValidationPlan:
    """The nodes each value-dependent pass of moto's update validator processes, in the order its walk
    processes them, as positions in the parsed tree (the same in every copy). A pass replaces only the
    nodes it processes, in place, so the positions of the nodes a later pass processes still hold: none
    of them lies under a node an earlier pass replaced (values and paths are leaves of that kind; the
    values ``ExecuteOperations`` computes are those outside functions, which the function pass replaces)."""

    values: tuple[Position, ...]  # ExpressionAttributeValueProcessor
    resolving: tuple[tuple[str, Position, int], ...]  # ("child", action, index) hook calls, ("node", at, -1)
    functions: tuple[Position, ...]  # UpdateExpressionFunctionEvaluator (post-order: inner functions first)
    operations: tuple[Position, ...]  # ExecuteOperations
    set_actions: tuple[Position, ...]  # TypeMismatchValidator, EmptyStringKeyValueValidator


_plans: dict[int, _ValidationPlan] = {}  # id(parsed update expression) -> its plan


def _validation_plan(root: Any, nodes: Any, passes: list[Any]) -> _ValidationPlan:
    """Walk the parsed tree once as each pass's walk would (children first, the hook before each child)."""
    values_pass, resolving_pass = passes[3], passes[4]
    action_types = (
        nodes.UpdateExpressionSetAction,
        nodes.UpdateExpressionRemoveAction,
        nodes.UpdateExpressionDeleteAction,
        nodes.UpdateExpressionAddAction,
    )
    values: list[Position] = []
    resolving: list[tuple[str, Position, int]] = []
    functions: list[Position] = []
    operations: list[Position] = []
    set_actions: list[Position] = []

    def visit(node: Any, where: Position, in_function: bool) -> None:
        if not isinstance(node, nodes.Node):
            return
        kind = type(node)
        inside = in_function or issubclass(kind, nodes.UpdateExpressionFunction)
        for i, child in enumerate(node.children or ()):
            if isinstance(node, action_types):  # the resolving pass's hook acts on these parents only
                resolving.append(("child", where, i))
            visit(child, (*where, i), inside)
        if issubclass(kind, values_pass.nodes_to_be_processed()):
            values.append(where)
        if issubclass(kind, resolving_pass.nodes_to_be_processed()):
            resolving.append(("node", where, -1))
        if issubclass(kind, nodes.UpdateExpressionFunction):
            functions.append(where)
        if issubclass(kind, nodes.UpdateExpressionValue) and not in_function:
            operations.append(where)
        if issubclass(kind, nodes.UpdateExpressionSetAction):
            set_actions.append(where)

    visit(root, (), False)
    return _ValidationPlan(tuple(values), tuple(resolving), tuple(functions), tuple(operations), tuple(set_actions))


def _validate_by_plan(patches: _Patches) -> None:
    """moto validates an update expression with ten passes over its whole tree, each visiting every node
    to process a few kinds. The nodes each value-dependent pass processes are known from the parsed tree
    (``_ValidationPlan``): the same moto processors process the same nodes in the same order, pass after
    pass (so the same values, paths and errors come out), without the walks in between. The structure
    passes run as before (memoised); the check for paths that do not exist walks the tree, as moto's,
    whenever the resolving pass produced one. A validator with other passes is moto's own."""
    nodes, validators = _module(_DYNAMODB_AST), _module(_DYNAMODB_VALIDATORS)
    validator_cls = validators.UpdateExpressionValidator
    original = validator_cls.validate
    base_pre = nodes.DepthFirstTraverser.pre_processing_of_child
    expected_passes = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
        validators.ExpressionAttributeValueProcessor,
        validators.ExpressionAttributeResolvingProcessor,
        validators.UpdateExpressionFunctionEvaluator,
        validators.NoneExistingPathChecker,
        validators.ExecuteOperations,
        validators.TypeMismatchValidator,
        validators.EmptyStringKeyValueValidator,
    )
    hooks_as_planned = all(
        cls.pre_processing_of_child is base_pre
        for cls in expected_passes
        if cls is not validators.ExpressionAttributeResolvingProcessor
    )

    def finder(tree: Any) -> Callable[[Position], Any]:
        """The node at a position of the tree as it is now (prefixes remembered: positions share them)."""
        found: dict[Position, Any] = {(): tree}

        def at(where: Position) -> Any:
            node = found.get(where)
            if node is None:
                node = found[where] = at(where[:-1]).children[where[-1]]
            return node

        return at

    def replace(node: Any, processed: Any) -> Any:  # what the walk does with a processed node
        parent = node.parent
        processed.parent = parent
        if parent:
            siblings = parent.children
            siblings[next(i for i, child in enumerate(siblings) if child is node)] = processed
        return processed

    def validate(self: Any) -> Any:
        tree = self.node_to_validate
        source = _copied_from.get(tree)
        passes: list[Any] = list(self.processors)
        if source is None or not hooks_as_planned or tuple(type(p) for p in passes) != expected_passes:
            return original(self)
        plan = _plans.get(source)
        if plan is None:
            plan = _plans[source] = _validation_plan(_ast_blobs[source][0], nodes, passes)
        values, resolving, functions, none_existing, operations, type_check, empty_check = passes[3:]
        for check in passes[:3]:  # the structure-only passes (memoised per expression, names and keys)
            tree = check.traverse(tree)
        # Each pass finds its nodes before it replaces any: none of them lies under another it replaces.
        for node in [at(where) for at in [finder(tree)] for where in plan.values]:
            replace(node, values.process(node))
        missing_path = False
        at = finder(tree)
        for step, node, child in [(step, at(where), child) for step, where, child in plan.resolving]:
            if step == "child":
                resolving.pre_processing_of_child(node, child)
            else:
                missing_path |= isinstance(replace(node, resolving.process(node)), nodes.NoneExistingPath)
        for node in [at(where) for at in [finder(tree)] for where in plan.functions]:
            replace(node, functions.process(node))
        if missing_path:  # a path that does not exist may still be in the tree: moto's walk finds it
            tree = none_existing.traverse(tree)
        for node in [at(where) for at in [finder(tree)] for where in plan.operations]:
            replace(node, operations.process(node))
        actions = [at(where) for at in [finder(tree)] for where in plan.set_actions]
        for check in (type_check, empty_check):
            for node in actions:
                replace(node, check.process(node))
        return tree

    patches.replace(validator_cls, "validate", validate)
    patches.forget(_plans)
