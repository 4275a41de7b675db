"""Hooks and fixes that make moto's Step Functions interpreter run stepspot's state machines locally.

moto (pinned to 5.2.5 in pyproject.toml) runs ASL with a port of LocalStack's interpreter. We plug in:

- hooks: the interpreter's Lambda and Batch clients are replaced (``boto_client_for`` in the modules
  that call it) by the local engine's in-process Lambda runner and subprocess Batch; a handler's own
  ``lambda:Invoke`` of a run's function (the scheduler's fan-out continuations, the monitor's reports)
  reaches the same Lambda runner instead of moto's Lambda backend (local mode configures moto without
  Docker, whose "simple" backend answers every invocation with a canned success and runs nothing);
- ``NodeOverrides`` and ``PropagateTags`` added to the submitJob parameters moto forwards (multi-node
  parallel jobs; the cost allocation tags reach the ECS tasks), as the AWS integration accepts both;
- DynamoDB (``moto_dynamodb``): operations serialised (moto's tables are not thread-safe), transactions
  that back up only the items they touch, and the same answers for less work per call;
- per call: moto's listing of a response class's methods and botocore's user-agent sanitising (pure
  functions run for every request) are memoised, and a request id is one draw; botocore's parameter
  validation is untouched;
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
import functools
import os
import string
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import moto

from stepspot.local import moto_dynamodb, parse_ahead
from stepspot.local.lambdas import REGION
from stepspot.local.moto_patching import (
    CORE_RESPONSES,
    CopyModule,
    Patches,
    PatchPointMissing,
    import_ec2_models_for,
    json_data_copy,
    moto_module,
)

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
_BOTOCORE_USERAGENT = "botocore.useragent"
_BOTOCORE_SESSION = "botocore.session"
_BOTOCORE_LOADERS = "botocore.loaders"
_CORE_UTILS = "moto.core.utils"
_SFN_RESPONSES = "moto.stepfunctions.responses"
_JSON_PATH = "moto.stepfunctions.parser.asl.utils.json_path"
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


def _lambda_backends() -> tuple[Any, Any]:
    return moto_module(_LAMBDA_MODELS).LambdaBackend, moto_module(_LAMBDA_SIMPLE_MODELS).LambdaSimpleBackend


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
        (_SFN_RESPONSES, "StepFunctionResponse"),
        (_JSON_PATH, "parse"),
        (_RESULT_PATH, "parse"),
        *((module_name, "copy") for module_name in _SFN_JSON_COPIERS),
        (_SFN_RESPONSES, "EmptyResult"),
        (CORE_RESPONSES, "method_names_from_class"),
        (CORE_RESPONSES, "camelcase_to_underscores"),
        (_BOTOCORE_USERAGENT, "sanitize_user_agent_string_component"),
        (_BOTOCORE_SESSION, "create_loader"),
        (_CORE_UTILS, "create_loader"),
        (CORE_RESPONSES, "ActionResult"),
        (CORE_RESPONSES, "gen_amzn_requestid_long"),
        (_JSONATA, "eval_jsonata_expression"),
        (_JSONATA, "_eval_jsonata"),
        (_LAMBDA_MODELS, "LambdaBackend"),
        (_LAMBDA_SIMPLE_MODELS, "LambdaSimpleBackend"),
    ]
    for module_name, attribute in expectations:
        try:
            module = moto_module(module_name)
        except ImportError as exc:
            raise PatchPointMissing(f"{module_name} is gone ({exc})") from exc
        if not hasattr(module, attribute):
            raise PatchPointMissing(f"{module_name}.{attribute} is gone")
    wait_cls = moto_module(_WAIT_FUNCTION).WaitFunction
    if not hasattr(wait_cls, "_eval_body") or not hasattr(wait_cls, "_get_wait_seconds"):
        raise PatchPointMissing("WaitFunction no longer has _eval_body/_get_wait_seconds")
    for backend_cls in _lambda_backends():
        if "invoke" not in vars(backend_cls):
            raise PatchPointMissing(f"{backend_cls.__name__}.invoke is gone")
    if not hasattr(moto_module(_TASK_SERVICE).StateTaskService, "_eval_execution"):
        raise PatchPointMissing("StateTaskService._eval_execution is gone")
    moto_dynamodb.check_patch_points()


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
        custom = moto_module(_CUSTOM_ERROR)
        if error_name and error_name.startswith("States."):
            from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName

            class _Passthrough(ErrorName):
                def __init__(self, name: str) -> None:
                    super().__init__(error_name=name)

            return _Passthrough(error_name)
        return custom.CustomErrorName(error_name)


_active: list[Patches] = []  # the patches of the running scope (at most one)
# Memos kept across runs (both results are immutable): parsed programs by definition, compiled JSONPaths.
_parsed: dict[str, Any] = {}
_memoised_paths: dict[str, Callable[..., Any]] = {}


def is_patched() -> bool:
    return bool(_active)


def parse_ahead_of(definitions: Iterable[str]) -> None:
    """Parse the run's state machine definitions in a forked process while the engine goes on
    (``stepspot.local.parse_ahead``); the interpreter's first parse of each takes the program from it."""
    parse = _state.get("original_parse")
    if parse is not None:
        parse_ahead.start((definition for definition in definitions if definition not in _parsed), parse)


@contextlib.contextmanager
def patched() -> Iterator[None]:
    """moto as local mode needs it (hooks, time scaling, fixes) for the duration; every patch is undone
    on exit, so other moto users of the process (the integration tests) get the pinned moto as it is."""
    patches = Patches()
    _share_botocore_loaders(patches)  # first: importing moto's modules makes a session
    try:
        import_ec2_models_for(REGION)  # before the patch points import moto's Batch, which imports EC2
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
        parse_ahead.discard()
        with _lock:
            _active.clear()
            _state.pop("original_parse", None)
            _state["clients"] = {}
            _state["time_scale"] = 1.0
            _state["execution_ended"] = None
            patches.undo()


def _report_execution_ends(patches: Patches) -> None:
    """Tell the engine when an execution ends (its status set), as Step Functions tells EventBridge."""
    communication = moto_module(_SFN_EXECUTION).BaseExecutionWorkerCommunication
    terminated = communication.terminated

    def report_terminated(self: Any) -> None:
        terminated(self)
        listener = _state["execution_ended"]
        if listener is not None:
            listener(self.execution)

    patches.replace(communication, "terminated", report_terminated)


def _share_botocore_loaders(patches: Patches) -> None:
    """One botocore data loader per data path for the run. botocore gives each session its own loader,
    which parses endpoints.json (about 1 MB) and every service model again, and a local run makes six
    sessions (moto's, the engine's, the Lambdas'): a third of its start-up. moto's responses read the service
    models too, through a loader of their own (a walk of every service's directories and each model parsed
    once more). What a loader returns is shared by every client of its session already, so sharing it
    across sessions and with moto changes nothing else."""
    session_module = moto_module(_BOTOCORE_SESSION)
    one_per_path = functools.lru_cache(maxsize=None)(session_module.create_loader)

    def shared(search_path_string: str | None = None) -> Any:  # moto's call, without the path, is None's
        return one_per_path(search_path_string)

    patches.replace(session_module, "create_loader", shared)
    patches.replace(moto_module(_CORE_UTILS), "create_loader", shared)
    _list_services_in_one_scan(patches)


def _list_services_in_one_scan(patches: Patches) -> None:
    """botocore lists the services that have a data file of a kind (``service-2``, ``paginators-1``,
    ``endpoint-rule-set-1``, ...) by walking every service's API version directories and testing for that
    file, once per kind: eight walks of 400 services at a local run's start (0.14 s). The same answer from
    one walk per loader that notes which files each version directory holds (``scandir``: no ``stat`` per
    file). A loader with another file loader, or a kind whose file is not a plain ``.json``/``.json.gz``
    name, is listed by botocore's own walk."""
    loaders = moto_module(_BOTOCORE_LOADERS)
    for name in ("Loader", "JSONFileLoader", "_JSON_OPEN_METHODS"):
        if not hasattr(loaders, name):
            raise PatchPointMissing(f"botocore.loaders.{name} is gone")
    loader_cls, original = loaders.Loader, loaders.Loader.list_available_services
    extensions = tuple(loaders._JSON_OPEN_METHODS)
    kinds_by_loader: weakref.WeakKeyDictionary[Any, dict[str, set[str]]] = weakref.WeakKeyDictionary()

    def scan(loader: Any) -> dict[str, set[str]]:  # data file kind -> services that have one
        found: dict[str, set[str]] = collections.defaultdict(set)
        for location in loader._potential_locations():
            with os.scandir(location) as services:
                for service in services:
                    if not service.is_dir():
                        continue
                    for version in os.listdir(service.path):
                        try:
                            entries = list(os.scandir(os.path.join(service.path, version)))
                        except (NotADirectoryError, FileNotFoundError):
                            continue  # botocore's test finds no file under a non-directory either
                        for entry in entries:
                            for extension in extensions:
                                if entry.name.endswith(extension) and entry.is_file():
                                    found[entry.name[: -len(extension)]].add(service.name)
        return found

    def list_available_services(self: Any, type_name: str) -> Any:
        if type(self.file_loader) is not loaders.JSONFileLoader or "/" in type_name or os.sep in type_name:
            return original(self, type_name)
        kinds = kinds_by_loader.get(self)
        if kinds is None:
            kinds = kinds_by_loader[self] = scan(self)
        return sorted(kinds.get(type_name, ()))

    patches.replace(loader_cls, "list_available_services", list_available_services)


def _apply(patches: Patches) -> None:
    _report_execution_ends(patches)
    lambda_utils = moto_module(_LAMBDA_UTILS)
    batch_service = moto_module(_BATCH_SERVICE)
    patches.replace(lambda_utils, "boto_client_for", _client_for(lambda_utils.boto_client_for))
    patches.replace(batch_service, "boto_client_for", _client_for(batch_service.boto_client_for))
    for lambda_backend in _lambda_backends():
        patches.replace(lambda_backend, "invoke", _local_invoke(vars(lambda_backend)["invoke"]))

    patches.replace(moto_module(_RETRIER), "time", _ScaledTime())
    wait_cls = moto_module(_WAIT_FUNCTION).WaitFunction

    def _scaled_wait(self: Any, env: Any) -> None:
        seconds = self._get_wait_seconds(env=env)
        if seconds > 0:
            env.program_state_event.wait(seconds / _state["time_scale"])

    patches.replace(wait_cls, "_eval_body", _scaled_wait)

    # Fix 1: a fresh callback endpoint for each evaluation of a .sync/.waitForTaskToken task.
    callback_cls = moto_module(_CALLBACK_SERVICE).StateTaskServiceCallback
    original_eval_execution = moto_module(_TASK_SERVICE).StateTaskService._eval_execution

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
    patches.replace(moto_module(_MAP_WORKER), "CustomErrorName", _StatesTolerantErrorName)
    patches.replace(moto_module(_PARALLEL), "CustomErrorName", _StatesTolerantErrorName)

    # Speed: moto parses the definition (ANTLR, ~0.15 s) on every StartExecution. The parsed program is
    # immutable (execution state lives in the Environment), so one parse per definition is enough.
    parser_cls = moto_module(_PARSER).AmazonStateLanguageParser
    original_parse = parser_cls.parse

    def _parse_once(definition: str) -> Any:
        program = _parsed.get(definition)
        if program is None:  # parsed meanwhile in a child? (program, None): moto's callers use the program only
            for parsed, ahead in parse_ahead.take().items():
                _parsed.setdefault(parsed, (ahead, None))
            program = _parsed.get(definition)
        if program is None:
            program = _parsed[definition] = original_parse(definition)
        return program

    _state["original_parse"] = original_parse

    patches.replace(parser_cls, "parse", staticmethod(_parse_once))
    # ... and each JSONPath is compiled once (jsonpath_ng builds a PLY parser per call, ~1 ms).
    for module_name in (_JSON_PATH, _RESULT_PATH):
        module = moto_module(module_name)
        memo = _memoised_paths.setdefault(module_name, functools.lru_cache(maxsize=4096)(module.parse))
        patches.replace(module, "parse", memo)

    # ... and the state data it copies at every step (about 30 copies of a task's input per execution) is
    # copied as the JSON it is, not by copy.deepcopy's generic walk (3.5x slower).
    for module_name in _SFN_JSON_COPIERS:
        patches.replace(moto_module(module_name), "copy", CopyModule(json_data_copy))

    moto_dynamodb.apply(patches)
    _install_per_call_speedups(patches)

    # Fix 4: SendTaskFailure drops its cause in moto's API layer; the workflow's failure reason is in it.
    responses = moto_module(_SFN_RESPONSES)

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return responses.EmptyResult()

    patches.replace(responses.StepFunctionResponse, "send_task_failure", send_task_failure)

    # Fix 5: SendTaskHeartbeat walks every RUNNING execution and dies on one whose worker has not
    # started yet (no exec_worker or env); AWS answers the token's own execution. Skip those.
    parser_models = moto_module(_SFN_PARSER_MODELS)

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
    patches.replace(moto_module(_JSONATA), "_eval_jsonata", _no_jsonata)


def _install_per_call_speedups(patches: Patches) -> None:
    """What every in-process AWS call runs, made cheaper for the run: moto lists its response class's
    methods (``inspect.getmembers``) and spells each action's name in snake case character by character to
    dispatch each request, and botocore sanitises each user-agent component character by character (about
    90 per request): all pure, memoised; moto draws each response's request id one character at a time.
    Parameter validation and parsing are untouched."""
    responses = moto_module(CORE_RESPONSES)
    patches.replace(
        responses, "method_names_from_class", functools.lru_cache(maxsize=None)(responses.method_names_from_class)
    )
    patches.replace(
        responses, "camelcase_to_underscores", functools.lru_cache(maxsize=4096)(responses.camelcase_to_underscores)
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
    useragent = moto_module(_BOTOCORE_USERAGENT)
    patches.replace(
        useragent,
        "sanitize_user_agent_string_component",
        functools.lru_cache(maxsize=4096)(useragent.sanitize_user_agent_string_component),
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
        callback_module = moto_module(_CALLBACK_SERVICE)
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
