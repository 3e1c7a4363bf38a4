"""``python -m central COMMAND``: the central commands without the tillgate front door."""

import sys

from central.cli import main

sys.exit(main())
