"""What a local run changes in its process, set up for the run and put back after it: ``contained()``.

Local mode runs inside the caller's process (the CLI, or the test suite next to other tests that use
moto), and while a run goes it needs process-wide changes:

- moto patched (``moto_patches.patched``: hooks, time scaling, fixes) and moto's config set to execute
  state machines (the run's server and ``mock_aws`` write it process-wide);
- ``sys.stdout`` replaced by the run's ``OutputRouter``, and the handlers' Powertools loggers (which keep
  the stream they saw when their module was imported) pointed at it;
- the Lambdas' environment (their settings) in ``os.environ``;
- no handler cache from before: each run is a new Lambda "container" (``handlers._cache.reset_all``);
- the emulator's chatter silenced (werkzeug's request lines, moto's ASL error logs, Powertools' "no
  metrics" warning).

On exit, whatever happened, every one of them is undone: moto's own code and config, the caller's stdout
and logger streams, exactly the environment of before (variables set during the run included), empty
handler caches, the loggers' levels and the warning filters. So ``pytest tests/integration`` and
``make test`` run the integration tests against the same moto whatever ran before them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

from stepspot.handlers import _cache
from stepspot.local import moto_patches
from stepspot.local.lambdas import FUNCTIONS, OutputRouter

# Loggers of the emulator that speak too much for a user: werkzeug logs one line per request, moto's
# interpreter logs every ASL-level failure (all handled by Catch) at ERROR.
QUIET_LOGGERS = {"werkzeug": logging.ERROR, "moto.stepfunctions": logging.CRITICAL}


def handler_log_handlers() -> list[logging.StreamHandler[Any]]:
    """The stream handlers of the imported handler modules' Powertools loggers (shared ones once)."""
    found: list[logging.StreamHandler[Any]] = []
    for module_name in FUNCTIONS.values():
        logger = getattr(sys.modules.get(module_name), "logger", None)
        handler = getattr(logger, "logger_handler", None)
        if isinstance(handler, logging.StreamHandler) and handler not in found:
            found.append(handler)
    return found


def _restore_environment(saved: Mapping[str, str]) -> None:
    for name in [name for name in os.environ if name not in saved]:
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextlib.contextmanager
def contained(environment: Mapping[str, str], lambda_log: Path) -> Iterator[OutputRouter]:
    """Set the process up for one local run (see the module docstring); yields the run's output router."""
    from moto.core import config as moto_config

    saved_environment = dict(os.environ)
    saved_stdout = sys.stdout
    # a TypedDict to mypy; the server's POST /moto-api/config and mock_aws(config=...) both update it
    live_config = cast(dict[str, Any], moto_config.default_user_config)
    saved_config = copy.deepcopy(live_config)
    saved_levels = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    saved_streams: dict[logging.StreamHandler[Any], TextIO] = {}
    router = OutputRouter(saved_stdout, lambda_log)
    with contextlib.ExitStack() as undo:
        undo.callback(router.close)
        undo.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        for name, level in QUIET_LOGGERS.items():
            logging.getLogger(name).setLevel(level)
            undo.callback(logging.getLogger(name).setLevel, saved_levels[name])

        def restore_config() -> None:
            live_config.clear()
            live_config.update(saved_config)

        undo.callback(restore_config)
        undo.enter_context(moto_patches.patched())

        undo.callback(_restore_environment, saved_environment)
        os.environ.update(environment)

        def restore_stdout() -> None:
            sys.stdout = saved_stdout
            # handler modules first imported during the run saw the router as sys.stdout
            for handler in handler_log_handlers():
                handler.setStream(saved_streams.get(handler, saved_stdout))

        undo.callback(restore_stdout)
        sys.stdout = router
        for handler in handler_log_handlers():
            saved_streams[handler] = handler.stream
            handler.setStream(router)

        undo.callback(_cache.reset_all)  # the run's clients and settings go with it
        _cache.reset_all()
        yield router
