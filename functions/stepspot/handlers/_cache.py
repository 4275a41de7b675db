"""The cold-start caches of the Lambda handlers, in one registry.

A warm Lambda container keeps what its handler built once (settings, clients, loaded plans). Local mode
and the tests run many "containers" one after another in one process, each with its own environment and
AWS endpoint: ``reset_all()`` forgets every registered cache at once, so none is missed and none has to
be found by looking into modules. A cache registers itself where it is defined::

    @_cache.register
    @functools.cache
    def runtime() -> Runtime: ...
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

Cached = TypeVar("Cached", bound=Callable[..., Any])

_lock = threading.Lock()
# qualified name -> how to clear it; a module imported again (a reload) replaces its entries
_clears: dict[str, Callable[[], None]] = {}


def _name(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def register(fn: Cached) -> Cached:
    """Register a ``functools.cache``/``lru_cache`` function: ``reset_all`` calls its ``cache_clear``.
    Returns ``fn`` (a decorator above ``@cache``)."""
    if not callable(getattr(fn, "cache_clear", None)):
        raise TypeError(f"{_name(fn)} has no cache_clear: put @functools.cache below @_cache.register")
    with _lock:
        _clears[_name(fn)] = lambda: cast(Any, fn).cache_clear()  # looked up when called
    return fn


def register_clear(clear: Callable[[], None]) -> Callable[[], None]:
    """Register the clear function of a cache of another shape (``_plans``' bounded plan cache)."""
    with _lock:
        _clears[_name(clear)] = clear
    return clear


def reset_all() -> None:
    """Forget every registered cache (of the handler modules imported so far: the others hold none)."""
    with _lock:
        clears = list(_clears.values())
    for clear in clears:
        clear()
