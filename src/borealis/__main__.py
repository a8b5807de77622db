"""``python -m borealis``: the same as the ``borealis`` command."""

import sys

from borealis.cli.main import main

sys.exit(main())
