"""``python -m stepspot.agent``: the same as the ``stepspot-agent`` console script."""

import sys

from stepspot.agent.cli import main

sys.exit(main())
