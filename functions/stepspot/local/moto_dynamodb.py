"""DynamoDB in moto as local mode needs it: one operation at a time, transactions that back up only the
items they touch, and the same answers for less work (all inside ``moto_patches.patched()``).

- operations serialised (moto's tables are not thread-safe, and the Lambdas run concurrently) and
  transactions that back up and restore only the items they touch (moto deep-copies the whole table per
  transaction item: O(n) per write; a table with a stream keeps moto's whole-table rollback);
- a table query reads its one partition (moto sorts every item of the table per query);
- update expressions: parsed once (the validator's private copy comes from its pickle, so the parsed tree
  is never changed), their structure-only validator passes (clause count, overlapping paths, key
  attributes) run once per expression, names and table keys, and the value-dependent passes process the
  nodes a plan found in the parsed tree, in moto's order, without walking the whole tree ten times;
- conditions: lexed once per text and parsed once per text, names and values;
- items: sized for the 400 KB limit by moto's rules in one pass, not deep-copied when only read as JSON
  or for a stream the table has not, and results made plain data in one walk and written as JSON (moto's
  model-driven serializer took 60-75 % of a GetItem/Query).

Each keeps moto's results and errors: tests/integration/test_local_dynamodb_speed.py compares them with
plain moto (random update expressions of every clause, conditions, transactions, streams, item sizes).
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import functools
import json
import os
import pickle
import threading
import weakref
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from stepspot.local.moto_patching import (
    CORE_RESPONSES,
    CopyModule,
    Patches,
    PatchPointMissing,
    json_data_copy,
    moto_module,
)

_DYNAMODB = "moto.dynamodb.models"
_DYNAMODB_TABLE = "moto.dynamodb.models.table"
_DYNAMODB_AST = "moto.dynamodb.parsing.ast_nodes"
_DYNAMODB_TYPES = "moto.dynamodb.models.dynamo_type"
_DYNAMODB_VALIDATORS = "moto.dynamodb.parsing.validators"
_DYNAMODB_RESPONSES = "moto.dynamodb.responses"
_DYNAMODB_UTILITIES = "moto.dynamodb.models.utilities"
_DYNAMODB_COMPARISONS = "moto.dynamodb.comparisons"

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

_dynamodb_lock = threading.RLock()


def _renew_lock() -> None:
    """In the forked DynamoDB process: another thread of the engine may have held the lock at the fork."""
    global _dynamodb_lock
    _dynamodb_lock = threading.RLock()


os.register_at_fork(after_in_child=_renew_lock)


def _no_copy(value: Any, memo: Any = None) -> Any:
    return value


# ``copy`` inside moto's transact_write_items, whose whole-table deepcopy makes every transaction O(table
# size): ``apply`` backs up the touched items instead (of tables without a stream: a stream's records are
# rolled back with moto's whole-table copy, as before).
_NO_TABLE_BACKUP = CopyModule(_no_copy)


def check_patch_points() -> None:
    """Raise ``PatchPointMissing`` unless every attribute the DynamoDB patches touch exists as expected."""
    expectations = [
        (_DYNAMODB, "DynamoDBBackend"),
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
        (_DYNAMODB_AST, "DepthFirstTraverser"),
        (_DYNAMODB_VALIDATORS, "deepcopy"),
        (_DYNAMODB_VALIDATORS, "ActionCountValidator"),
        (_DYNAMODB_VALIDATORS, "OverlappingPathsValidator"),
        (_DYNAMODB_VALIDATORS, "UpdateHashRangeKeyValidator"),
    ]
    for module_name, attribute in expectations:
        if not hasattr(moto_module(module_name), attribute):
            raise PatchPointMissing(f"{module_name}.{attribute} is gone")
    backend = moto_module(_DYNAMODB).DynamoDBBackend
    for name in (*_DYNAMODB_OPERATIONS, "get_keys_value"):
        if not hasattr(backend, name):
            raise PatchPointMissing(f"DynamoDBBackend.{name} is gone")
    table_cls = moto_module(_DYNAMODB_TABLE).Table
    if not hasattr(table_cls, "all_items") or not hasattr(table_cls, "query"):
        raise PatchPointMissing("dynamodb Table.all_items/query is gone")
    condition_parser = moto_module(_DYNAMODB_COMPARISONS).ConditionExpressionParser
    for name in ("_lex_condition_expression", "parse"):
        if not hasattr(condition_parser, name):
            raise PatchPointMissing(f"ConditionExpressionParser.{name} is gone")
    if "stream_shard" not in table_cls.__init__.__code__.co_names:
        raise PatchPointMissing("dynamodb Table.stream_shard is gone")
    if not isinstance(vars(moto_module(_DYNAMODB_TYPES).DynamoType).get("cast_value"), property):
        raise PatchPointMissing("dynamodb DynamoType.cast_value is no longer a property")


def apply(patches: Patches) -> None:
    """DynamoDB in moto: one operation at a time (DynamoDB is linearizable per item; moto's in-memory
    tables are not thread-safe, and the Lambdas run concurrently), and transactions that back up and
    restore only the items they touch."""
    models = moto_module(_DYNAMODB)
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
        models.copy = _NO_TABLE_BACKUP  # for this call only, under the lock
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


def _install_dynamodb_speedups(patches: Patches, models: Any) -> None:
    """Same results, less work: a table query walks its own partition, not the whole sorted table
    (moto's ``Table.query`` calls ``all_items()`` and keeps the items of one hash key, so the local
    scheduler's queries grew with everything the run wrote); an update expression is parsed once."""
    table_cls = moto_module(_DYNAMODB_TABLE).Table
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
        if not self.range_key_attr:
            return [found]
        # In range-key order, by each key's value computed once: moto's query sorts what it keeps by range
        # key again, comparing DynamoTypes (two value computations per comparison), and a sorted list costs
        # that sort one comparison per item.
        return sorted(found.values(), key=lambda item: item.range_key.cast_value)

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
    _cast_scalars_first(patches)

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
    patches.replace(moto_module(_DYNAMODB_RESPONSES), "UpdateExpressionParser", _ParsedOnce)  # its own first parse
    _lex_conditions_once(patches)
    _find_clauses_once(patches)
    _results_to_dicts_in_one_walk(patches)
    _parse_conditions_once(patches)
    _copy_items_only_when_read(patches, models)
    patches.forget(_ast_blobs)  # the trees parse_once returns live as long as this run
    patches.forget(_structure_passed)
    _install_update_validator_speedups(patches)

    # The results of the item operations are plain dicts already in the wire shape (AttributeValue maps,
    # PascalCase members); DynamoDB speaks JSON 1.0, so json.dumps is the serializer's output. Anything
    # else (other operations, a member the output shape does not name, a value JSON cannot hold) goes
    # through moto's serializer as before.
    action_result = moto_module(CORE_RESPONSES).ActionResult
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


def _size_items_without_copies(patches: Patches) -> None:
    """An item's size (checked against the 400 KB limit before every attribute an update sets, so computed
    over the whole item once per SET action) is summed by the same rules as ``DynamoType.size`` without
    wrapping every set element and map value in a new ``DynamoType`` first (moto re-wraps whole maps)."""
    types = moto_module(_DYNAMODB_TYPES)
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


def _cast_scalars_first(patches: Patches) -> None:
    """``DynamoType.cast_value`` (what every comparison, sort and hash of a value computes, on both sides)
    asks whether the value is a number, a set, a list, a map or null before it returns a string as it is:
    strings and numbers, nearly every key and condition operand, are answered first, as moto answers them."""
    dynamo_type = moto_module(_DYNAMODB_TYPES).DynamoType
    original = vars(dynamo_type)["cast_value"]

    def cast_value(self: Any) -> Any:
        kind = self.type
        if kind == "S" or kind == "B" or kind == "BOOL":
            return self.value
        if kind == "N":
            return Decimal(self.value)
        return original.fget(self)

    patches.replace(dynamo_type, "cast_value", property(cast_value))


def _lex_conditions_once(patches: Patches) -> None:
    """A condition expression is split into tokens once per text (moto lexes it twice per conditional
    write, with a dozen regular expressions per token): the tokens are immutable (named tuples with no
    children), and every parse gets its own deque of them. Names and values are resolved after lexing,
    per call, as before; a text that does not lex raises every time."""
    parser_cls = moto_module(_DYNAMODB_COMPARISONS).ConditionExpressionParser
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


def _find_clauses_once(patches: Patches) -> None:
    """moto's UpdateItem response layer searches the parsed expression twice per call for the names and
    values it uses. A parsed expression (cached, never changed: the validator works on its own copy) gives
    the same nodes every time: searched once per expression and kinds, each caller gets its own list."""
    node_cls = moto_module(_DYNAMODB_AST).Node
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


def _results_to_dicts_in_one_walk(patches: Patches) -> None:
    """moto turns each DynamoDB result into plain data with ``dynamo_to_dict``, which asks every string and
    number of the result whether it is a datetime, a ``DynamoType`` and has ``to_json``. Strings, numbers,
    booleans, None, dicts, lists and non-binary ``DynamoType`` values (all of an item's, but its binary
    ones) are answered here, the same; anything else goes to moto's function (whose own recursion comes
    back here)."""
    utilities = moto_module(_DYNAMODB_UTILITIES)
    original = utilities.dynamo_to_dict
    plain = (str, int, float, bool, type(None))
    dynamo_type = moto_module(_DYNAMODB_TYPES).DynamoType

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
    patches.replace(moto_module(_DYNAMODB_RESPONSES), "dynamo_to_dict", dynamo_to_dict)


def _parse_conditions_once(patches: Patches) -> None:
    """A condition expression is parsed once per text, names and values: moto parses an UpdateItem's
    condition twice per request (its response layer checks the names and values used, the backend
    evaluates it) and a transaction item's three times, and the scheduler's conditions recur with the same
    values (``attribute_not_exists(pk)``, ``#s = :wf_running AND #r < :max``). The parsed operator tree is
    a function of those three and immutable (evaluating it reads the item and the tree); each parse gets
    the same lists of names and values found. Values JSON cannot hold (binary) are parsed every time, and
    a condition that does not parse raises every time."""
    parser_cls = moto_module(_DYNAMODB_COMPARISONS).ConditionExpressionParser
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


def _copy_items_only_when_read(patches: Patches, models: Any) -> None:
    """An UpdateItem deep-copied the whole item twice before changing it. The response layer's copy reports
    the old values, and it reads only the copy's ``to_json()``: an ``_ItemSnapshot`` is the same data. The
    backend's copy is for the table's stream: on a table without a stream nothing reads it, so none is made."""
    item_cls = moto_module(_DYNAMODB_TYPES).Item

    def snapshot_copy(value: Any, memo: Any = None) -> Any:
        return _ItemSnapshot(value) if type(value) is item_cls else copy.deepcopy(value, memo)

    patches.replace(moto_module(_DYNAMODB_RESPONSES), "copy", CopyModule(snapshot_copy))

    no_stream = threading.local()  # set while an update of an item of a table without a stream runs

    def stream_copy(value: Any, memo: Any = None) -> Any:
        if type(value) is item_cls and getattr(no_stream, "update", False):
            return value  # orig_item: read only by the table's stream, which it has not
        return copy.deepcopy(value, memo)

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

    patches.replace(models, "copy", CopyModule(stream_copy))
    patches.replace(backend_cls, "update_item", update_item)


_ast_blobs: dict[int, tuple[Any, bytes]] = {}  # id(parsed update expression) -> (the tree, its pickle)
_copied_from: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()  # validator copy -> its tree
_structure_passed: set[tuple[Any, int, Any]] = set()  # (check, parsed tree, what else it read) that passed


def _names_key(names: dict[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((names or {}).items()))


def _check_structure_once(patches: Patches, check_cls: Any, reads: Callable[[Any], Any]) -> None:
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


def _copy_tree(value: Any, memo: Any = None) -> Any:
    """``deepcopy`` of moto's update validator: a parsed expression's private copy comes from its pickle
    (same object graph, about 4x faster than deepcopy); anything else is deep-copied as before."""
    cached = _ast_blobs.get(id(value))
    if cached is not None and cached[0] is value:
        tree = pickle.loads(cached[1])
        _copied_from[tree] = id(value)
        return tree
    return copy.deepcopy(value, memo)


def _install_update_validator_speedups(patches: Patches) -> None:
    """moto validates an update expression with ten depth-first passes, each asking ``isinstance`` of an
    ABC (slow) for every node twice. The same walk, with those answers memoised per node class (a class's
    ABC subclass relations never change: moto registers no virtual subclasses), gives the same tree."""
    nodes = moto_module(_DYNAMODB_AST)
    node_cls, traverser_cls = nodes.Node, nodes.DepthFirstTraverser
    base_process, base_pre = traverser_cls.process, traverser_cls.pre_processing_of_child
    is_node: dict[type, bool] = {}
    processed: dict[tuple[type, type], bool] = {}

    def traverse_node_recursively(self: Any, node: Any, child_id: int = -1) -> Any:
        # Per pass, once: its hook (most passes keep the base no-op, called per child otherwise) and its
        # processing map (moto's ``process`` builds the map again for every node it processes).
        pass_cls = type(self)
        pre = None if pass_cls.pre_processing_of_child is base_pre else self.pre_processing_of_child
        handlers = list(self._processing_map().items()) if pass_cls.process is base_process else None
        wanted_classes = self.nodes_to_be_processed()

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
    validators = moto_module(_DYNAMODB_VALIDATORS)
    _check_structure_once(patches, validators.ActionCountValidator, lambda check: ())
    _check_structure_once(
        patches, validators.OverlappingPathsValidator, lambda check: _names_key(check.expression_attribute_names)
    )
    _check_structure_once(
        patches,
        validators.UpdateHashRangeKeyValidator,
        lambda check: (_names_key(check.expression_attribute_names), tuple(check.table_key_attributes)),
    )
    patches.replace(moto_module(_DYNAMODB_VALIDATORS), "deepcopy", _copy_tree)
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


def _validate_by_plan(patches: Patches) -> None:
    """moto validates an update expression with ten passes over its whole tree, each visiting every node
    to process a few kinds. The nodes each value-dependent pass processes are known from the parsed tree
    (``_ValidationPlan``): the same moto processors process the same nodes in the same order, pass after
    pass (so the same values, paths and errors come out), without the walks in between. The structure
    passes run as before (memoised); the check for paths that do not exist walks the tree, as moto's,
    whenever the resolving pass produced one. A validator with other passes is moto's own."""
    nodes, validators = moto_module(_DYNAMODB_AST), moto_module(_DYNAMODB_VALIDATORS)
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

    def nodes_at(tree: Any, positions: Iterable[Position]) -> list[tuple[Any, Position]]:
        """The nodes at ``positions`` of the tree as it is now (prefixes shared: looked up once)."""
        found: dict[Position, Any] = {(): tree}

        def at(where: Position) -> Any:
            node = found.get(where)
            if node is None:
                node = found[where] = at(where[:-1]).children[where[-1]]
            return node

        return [(at(where), where) for where in positions]

    def replace(node: Any, where: Position, processed: Any) -> Any:  # what the walk does with a processed node
        processed.parent = node.parent
        if node.parent:
            node.parent.children[where[-1]] = processed
        return processed

    def run(check: Any, tree: Any, positions: Iterable[Position]) -> None:
        # A pass finds its nodes before it replaces any: none of them lies under another it replaces.
        for node, where in nodes_at(tree, positions):
            replace(node, where, check.process(node))

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
        run(values, tree, plan.values)
        missing_path = False
        resolved = nodes_at(tree, [at for _, at, _ in plan.resolving])
        for (step, _, child), (node, where) in zip(plan.resolving, resolved, strict=True):
            if step == "child":
                resolving.pre_processing_of_child(node, child)
            else:
                missing_path |= isinstance(replace(node, where, resolving.process(node)), nodes.NoneExistingPath)
        run(functions, tree, plan.functions)
        if missing_path:  # a path that does not exist may still be in the tree: moto's walk finds it
            tree = none_existing.traverse(tree)
        run(operations, tree, plan.operations)
        run(type_check, tree, plan.set_actions)
        run(empty_check, tree, plan.set_actions)
        return tree

    patches.replace(validator_cls, "validate", validate)
    patches.forget(_plans)
