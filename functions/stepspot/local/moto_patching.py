"""What patches moto for a local run and what its parts share: the undo log of one ``patched()`` scope,
moto's modules by name, the refusal when moto's internals moved, a fast copy of JSON data.

``moto_patches`` (the Step Functions interpreter, Lambda, per-call costs) and ``moto_dynamodb`` (DynamoDB)
patch moto through these; neither imports the other's internals.
"""

from __future__ import annotations

import copy
import importlib
import marshal
import os
import sys
from collections.abc import Callable
from typing import Any

CORE_RESPONSES = "moto.core.responses"


_EC2_INSTANCE_TYPES = "moto.ec2.models.instance_types"
_EC2_OFFERINGS = "/instance_type_offerings/"


def import_ec2_models_for(region: str) -> None:
    """Import moto's EC2 instance types with the instance type offerings of ``region`` only.

    When first imported (moto's Batch imports EC2), moto loads the offerings of every region: 95 files,
    150,000 entries, 0.06 s of every local run's start. A local run is in one region, whose offerings are
    loaded as moto has them (what run_instances checks an instance type against); the other regions' are
    left empty."""
    if _EC2_INSTANCE_TYPES in sys.modules:
        return
    utils: Any = importlib.import_module("moto.utilities.utils")
    load_resource = utils.load_resource

    def regional(resource: str) -> Any:
        if _EC2_OFFERINGS in resource and not os.path.basename(resource).startswith(f"{region}."):
            return []
        return load_resource(resource)

    patches = Patches()
    patches.replace(utils, "load_resource", regional)
    try:
        importlib.import_module(_EC2_INSTANCE_TYPES)
    finally:
        patches.undo()


class PatchPointMissing(RuntimeError):
    """moto's internals moved: the local engine's hooks would silently stop working."""


def moto_module(name: str) -> Any:
    return importlib.import_module(name)


class Patches:
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


def json_data_copy(value: Any, memo: Any = None) -> Any:
    """A deep copy of JSON data (dicts, lists, strings, numbers, booleans, None); anything else inside is
    copied by ``copy.deepcopy``. JSON values have no identity, so copies share nothing, even where the
    original referred to one value twice (no memo). Data of plain types round-trips through ``marshal``
    (format 2: no references between objects), in C; the rest is copied value by value."""
    try:
        return marshal.loads(marshal.dumps(value, 2))
    except ValueError:  # a value marshal does not know (a datetime, a Decimal, a subclass) is inside
        return _copied_value_by_value(value)


def _copied_value_by_value(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _copied_value_by_value(item) for key, item in value.items()}
    if kind is list:
        return [_copied_value_by_value(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


class CopyModule:
    """Stands in for the ``copy`` module inside a moto module whose ``copy.deepcopy`` calls local mode
    answers its own way (``deepcopy``); every other name is the ``copy`` module's."""

    def __init__(self, deepcopy: Callable[..., Any]) -> None:
        self.deepcopy = deepcopy

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)
