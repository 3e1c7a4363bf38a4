"""``python -m tillgate`` is the ``tillgate`` command."""

import sys

from tillgate.cli import main

sys.exit(main())
