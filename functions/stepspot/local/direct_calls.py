"""In-process AWS calls without the HTTP round trip: the Lambdas' DynamoDB and Step Functions calls go
from botocore straight to moto's request handler.

A call through ``mock_aws`` is serialised by botocore, signed, wrapped in an HTTP request, matched by
moto against every service's URL patterns, rebuilt as a werkzeug request, answered, wrapped in an HTTP
response and parsed back: for a GetItem, two thirds of its time is that transport (a local run makes
about twenty such calls per task). Here a ``before-call`` hook hands the serialised request (botocore has
validated the parameters and built the JSON body already, as for AWS) to moto's response class for the
service, set up as ``BaseResponse.setup_class`` sets it up for a JSON POST, and parses moto's answer with
botocore's own parser for the protocol. What is skipped is what only matters on a wire: SigV4 signing,
URL routing, HTTP objects. What the emulated service decides (validation, conditions, errors) is moto's,
as before; an error answer raises the same ``ClientError`` (botocore raises it from the parsed response).

Only services speaking AWS JSON 1.0/1.1 over one POST endpoint, whose moto handler is known, take this
path; anything else (S3, Batch, ECS, ...) goes through the stubber as before. Hooks registered for a
specific operation (``before-call.dynamodb.PutItem``: the fault injection of ``stepspot.local.aws_faults``)
run first: botocore calls the most specific handlers first and stops at the first answer.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlparse

from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders
from botocore.endpoint import convert_to_response_dict
from botocore.parsers import ResponseParserFactory
from moto.core.botocore_stubber import MockRawResponse
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.utils import utcnow
from werkzeug.http import http_date

Answer = tuple[int, dict[str, Any], Any]  # moto's (status, headers, body)


class _Headers(dict[str, str]):
    """Request headers as moto reads them: case-insensitive lookups (werkzeug's ``Headers`` behaviour)."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


def _handlers() -> dict[str, Callable[[], Any]]:
    """The service's name in botocore's events -> moto's response class for it (imported when first used)."""
    from moto.dynamodb.responses import DynamoHandler
    from moto.stepfunctions.responses import StepFunctionResponse

    return {"dynamodb": DynamoHandler, "sfn": StepFunctionResponse}


class DirectCalls:
    """The ``before-call`` hook: answers a JSON-protocol call of a known service from moto in-process, or
    from the process that serves the service (``served_elsewhere``: service -> ``call(operation, params)``,
    e.g. ``stepspot.local.dynamodb_process``)."""

    def __init__(self, served_elsewhere: Mapping[str, Callable[[str, dict[str, Any]], Answer]] | None = None) -> None:
        self._handlers = _handlers()
        self._elsewhere = dict(served_elsewhere or {})
        self._parser = ResponseParserFactory().create_parser("json")  # stateless: one for every call, as a client's

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self._handlers)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        service_model = model.service_model
        service = service_model.service_id.hyphenize()
        factory = self._handlers.get(service)
        protocol = service_model.metadata.get("protocol")
        if factory is None or protocol != "json" or params.get("method") != "POST":
            return None
        elsewhere = self._elsewhere.get(service)
        if elsewhere is not None:
            status, headers, body = elsewhere(model.name, params)
        else:
            status, headers, body = self.answer(factory(), model, params)
        return parsed_answer(model, params["url"], status, headers, body, self._parser)

    @staticmethod
    def answer(handler: Any, model: Any, params: dict[str, Any]) -> Answer:
        """moto's answer, with the handler set up as ``BaseResponse.setup_class`` does for this request
        (moto.core.responses, pinned with moto in pyproject.toml; tests/integration/test_direct_calls.py compares
        every answer kind with the HTTP path)."""
        raw_body = params.get("body") or b""
        body = raw_body.decode("utf-8") if isinstance(raw_body, bytes) else str(raw_body)
        headers = _Headers({str(k).lower(): str(v) for k, v in params.get("headers", {}).items()})
        url = params["url"]
        parsed_url = urlparse(url)
        handler.is_werkzeug_request = False
        handler.normalized_request = None
        handler.parsed_url = parsed_url
        handler.body = body
        handler.raw_body = raw_body
        handler.form_data = {}
        handler.querystring = {}
        handler.data = handler.querystring
        handler.uri = url
        handler.path = handler.raw_path = parsed_url.path or "/"
        handler.method = "POST"
        found = handler.region_regex.search(url)
        handler.region = found.group(1) if found else handler.default_region
        handler.partition = "aws"
        handler.uri_match = {}
        handler.headers = headers
        handler.response_headers = {"server": "amazon.com", "date": http_date(utcnow())}
        handler.access_key = "local"
        handler.current_account = DEFAULT_ACCOUNT_ID
        if handler.automated_parameter_parsing:
            handler.params = _parsed_request(model, handler.PROTOCOL_PARSER_MAP_TYPE, headers, raw_body)
        status, response_headers, response_body = handler.call_action()
        return int(status), dict(response_headers), response_body


# Shape types whose JSON moto's request parser turns into something else (base64 -> bytes, a date string
# -> datetime, an integer -> float): ``_parsed_request`` leaves a request that has none of them to json.
_RICHER_TYPES = frozenset({"blob", "timestamp", "float", "double"})


def _parsed_request(model: Any, map_type: Any, headers: Any, raw_body: bytes | str) -> Any:
    """moto's parse of a JSON-protocol request (the parameters its handler reads). moto walks the input
    shape over every value (each of a DynamoDB attribute value's ten members looked up: a tenth of the local
    DynamoDB's time); for a request where no member of a richer type (``_RICHER_TYPES``: a DynamoDB binary
    attribute, ``B``/``BS``) appears, the walk gives exactly what json gives (botocore sends neither nulls
    nor unknown members), so json gives it. A string value that is exactly such a member's name takes
    moto's walk too."""
    text = raw_body.encode() if isinstance(raw_body, str) else raw_body
    if map_type is dict and text and not any(quoted in text for quoted in _richer_members(model)):
        return json.loads(text)
    parser = PROTOCOL_PARSERS["json"](model, map_type=map_type)
    request: Any = {"method": "POST", "values": {}, "headers": headers, "body": raw_body}
    request.update(url_path="/", url_params={})
    return parser.parse(request)


@functools.cache
def _richer_members(model: Any) -> frozenset[bytes]:
    """The names, quoted as in a JSON body, under which a value of a richer type can appear in ``model``'s
    input (at any depth): each member whose value is one (or a list or map of them)."""
    names: set[bytes] = set()
    walked: set[str] = set()

    def richer(shape: Any) -> bool:
        if shape.type_name == "list":
            return richer(shape.member)
        if shape.type_name == "map":
            return richer(shape.value)
        return shape.type_name in _RICHER_TYPES

    def walk(shape: Any) -> None:
        if shape.name in walked:  # recursive shapes (a DynamoDB attribute value holds maps of them)
            return
        walked.add(shape.name)
        if shape.type_name == "structure":
            for name, member in shape.members.items():
                if richer(member):
                    names.add(b'"%s"' % member.serialization.get("name", name).encode())
                else:
                    walk(member)
        elif shape.type_name == "list":
            walk(shape.member)
        elif shape.type_name == "map":
            walk(shape.value)

    if model.input_shape is not None:
        walk(model.input_shape)
    return frozenset(names)


def http_headers(headers: Mapping[str, Any]) -> HTTPHeaders:
    """botocore's headers of an answer from moto's (name -> value)."""
    found = HTTPHeaders()
    for name, value in headers.items():
        found[name] = str(value)
    return found


def parsed_answer(
    model: Any, url: str, status: int, headers: dict[str, Any], body: Any, parser: Any
) -> tuple[AWSResponse, dict[str, Any]]:
    """(the HTTP response, what botocore parses of it) for an answer to a call of ``model`` (an operation),
    as botocore's endpoint builds and parses them; ``parser`` is the protocol's (stateless) parser."""
    http = AWSResponse(url, status, http_headers(headers), MockRawResponse(body or b""))
    response = convert_to_response_dict(http, model)
    parsed: dict[str, Any] = parser.parse(response, model.output_shape)
    if status >= 300:  # botocore.endpoint.Endpoint._add_modeled_error_fields: e.g. CancellationReasons
        error_shape = model.service_model.shape_for_error_code(parsed.get("Error", {}).get("Code"))
        if error_shape is not None:
            parsed.update(parser.parse(response, error_shape))
    return http, parsed


@contextlib.contextmanager
def direct_calls(
    events: Any, served_elsewhere: Mapping[str, Callable[[str, dict[str, Any]], Answer]] | None = None
) -> Iterator[DirectCalls]:
    """Answer the calls of every client made with the event emitter ``events`` (a session's) without HTTP,
    while inside (see ``DirectCalls``)."""
    hook = DirectCalls(served_elsewhere)
    names = [f"before-call.{service}" for service in hook.services]
    for name in names:
        events.register_last(name, hook, unique_id=f"stepspot-direct-{name}")
    try:
        yield hook
    finally:
        for name in names:
            events.unregister(name, unique_id=f"stepspot-direct-{name}")
