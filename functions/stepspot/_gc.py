"""The cyclic garbage collector around allocation-heavy phases: paused where nothing forms cycles, and
tuned for a local run (``collected_after_setup``).

Validating and planning a 100k-task workflow allocates millions of small objects; each allocation burst
triggers generation-0 collections that re-scan everything young and roughly double the run time. The
objects built there form no reference cycles, so reference counting alone frees them; the collector is
restored (and left to run normally) afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

RUN_GC_THRESHOLD = 5_000  # allocations between collections of the youngest generation during a run (default 700)


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def collected_after_setup() -> Iterator[Callable[[], None]]:
    """The garbage collector for one local run: off while the run sets up (moto's models, the state
    machines, the clients: about 300,000 objects that live as long as the run, which five full collections
    scanned for nothing), then, once the caller says the set-up is done, those objects frozen (left out of
    the collections of the run: each full collection scanned them again, about 0.2 s each) and the
    collector on again as before, collecting the youngest objects after 5,000 allocations rather than 700
    (the run allocates fast: a third of its collection time went to collections that freed little). On
    exit the objects are unfrozen and the collector is as it was."""
    was_enabled, thresholds = gc.isenabled(), gc.get_threshold()
    gc.disable()
    frozen = False

    def setup_done() -> None:
        nonlocal frozen
        gc.freeze()
        frozen = True
        gc.set_threshold(RUN_GC_THRESHOLD, *thresholds[1:])
        if was_enabled:
            gc.enable()

    try:
        yield setup_done
    finally:
        gc.set_threshold(*thresholds)
        if frozen:
            gc.unfreeze()
        if was_enabled:
            gc.enable()


def collected_in_forked_server() -> None:
    """The collector of a process forked from a local run to serve it (``stepspot.local.dynamodb_process``,
    ``stepspot.local.lambda_processes``):
    what it inherited frozen (it lives as long as the process, and a collection that scanned it would also
    copy every page it touched), the youngest objects collected as in the run, the collector on."""
    gc.freeze()
    gc.set_threshold(RUN_GC_THRESHOLD, *gc.get_threshold()[1:])
    gc.enable()
