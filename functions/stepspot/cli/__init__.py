"""The `stepspot` command.

``stepspot.cli.commands`` defines every subcommand's arguments and sets ``handler`` to
``"module:function"`` (a function taking the parsed ``argparse.Namespace`` and returning an exit code);
that module is imported only when its command runs, so `stepspot --help` and a mistyped command start at
once. Exit codes: 0 success, 1 failure of the work itself (a workflow failed), 2 bad input or usage,
3 environment problem (missing credentials, missing deployment). A ``StepspotError`` reaching this level
is printed as one sentence, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING

from stepspot import __version__
from stepspot.cli.commands import COMMANDS

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepspot",
        description="Fault-tolerant HPC workflows on AWS Spot capacity, and locally.",
    )
    parser.add_argument("--version", action="version", version=f"stepspot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for register in COMMANDS:
        register(subparsers)
    return parser


def resolve_handler(reference: str) -> Callable[[argparse.Namespace], int]:
    """The function a ``"module:function"`` reference names (its module imported now)."""
    module_name, _, function = reference.partition(":")
    handler: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module_name), function)
    return handler


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.own_process = argv is None  # run as the `stepspot` process, not called from Python (output.end_process)
    from stepspot._gc import gc_paused

    with gc_paused():  # importing the command's modules builds long-lived objects only: nothing to collect
        handler = resolve_handler(args.handler)
    from stepspot.errors import ConfigurationError, StepspotError, WorkflowValidationError

    try:
        code: int = handler(args)
    except WorkflowValidationError as exc:
        from stepspot.cli.output import print_problems

        print_problems(exc.problems, source=exc.details.get("source"))
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"stepspot: {exc.message}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except StepspotError as exc:
        print(f"stepspot: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("stepspot: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
