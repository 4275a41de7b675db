"""The one registry of the handlers' cold-start caches (settings, clients, plans).

A warm Lambda keeps what it built on its first invocation; tests and local mode (each engine run has its
own moto server and environment) must forget it. Every handler-side cache registers here when its module
is imported, so ``reset_all()`` clears all of them without looking into modules for ``cache_clear``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_resets: list[Callable[[], None]] = []


def register(reset: Callable[[], None]) -> None:
    """Add a callable that empties one cache (``reset_all`` calls it)."""
    if reset not in _resets:
        _resets.append(reset)


def cold_start(build: Callable[[], T]) -> functools._lru_cache_wrapper[T]:
    """``functools.cache`` for a handler's context builder, registered for ``reset_all``."""
    cached = functools.cache(build)
    register(cached.cache_clear)
    return cached


def reset_all() -> None:
    """Forget every handler's cold-start state: the next invocation builds it again from the environment."""
    for reset in _resets:
        reset()
