"""The `stepspot` command.

Each subcommand lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``handler`` (a function taking the parsed ``argparse.Namespace`` and returning an exit
code). Exit codes: 0 success, 1 failure of the work itself (a workflow failed), 2 bad input or usage,
3 environment problem (missing credentials, missing deployment). A ``StepspotError`` reaching this level
is printed as one sentence, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from stepspot import __version__
from stepspot.errors import ConfigurationError, StepspotError, WorkflowValidationError

# Subcommand modules, in the order `stepspot --help` lists them.
COMMAND_MODULES = (
    "stepspot.cli.validate",
    "stepspot.cli.plan",
    "stepspot.cli.schema",
    "stepspot.cli.local",
    "stepspot.cli.remote",
    "stepspot.cli.remote_status",
    "stepspot.cli.outputs",
    "stepspot.cli.templates",
    "stepspot.cli.cleanup",
    "stepspot.cli.report",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stepspot",
        description="Fault-tolerant HPC workflows on AWS Spot capacity, and locally.",
    )
    parser.add_argument("--version", action="version", version=f"stepspot {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # that part of the CLI has not been built into this install
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
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
