"""`python -m stepspot.cli`: the `stepspot` command."""

import sys

from stepspot.cli import main

sys.exit(main())
