"""The ``stepspot-agent`` command: ``mpi`` goes to ``stepspot.mpi`` (multi-node roles), everything else to
the checkpoint agent. Kept apart from the agent so the agent's own parser stays as it is."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["mpi"]:
        from stepspot.mpi import main as mpi_main

        return mpi_main(args[1:])
    from stepspot.agent.cli import main as agent_main

    return agent_main(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
