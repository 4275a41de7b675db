"""Plan loading shared by the scheduling Lambdas: a warm Lambda reads each plan from S3 once."""

from __future__ import annotations

from collections import OrderedDict

from pydantic import ValidationError

from stepspot.aws.s3 import DocumentStore
from stepspot.errors import FatalError
from stepspot.handlers._cache import register
from stepspot.plan import Plan, plan_from_json

_CACHE_SIZE = 4
_cache: OrderedDict[str, Plan] = OrderedDict()


class PlanUnreadableError(FatalError):
    """Indicates that a plan.json in S3 is not a plan this version of stepspot can read."""


def load_plan(documents: DocumentStore, plan_uri: str) -> Plan:
    """Plans are immutable once written (the URI names one workflow), so caching by URI is safe."""
    plan = _cache.get(plan_uri)
    if plan is not None:
        _cache.move_to_end(plan_uri)
        return plan
    try:
        plan = plan_from_json(documents.read(plan_uri))
    except ValidationError as exc:
        raise PlanUnreadableError(f"{plan_uri} is not a valid plan: {exc.errors()[0]['msg']}") from exc
    _cache[plan_uri] = plan
    while len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return plan


def clear() -> None:
    _cache.clear()


register(clear)
