"""``python -m borealis.chaos.faultproxy``: run the fault proxy's command line."""

import sys

from borealis.chaos.faultproxy.cli import main

if __name__ == "__main__":
    sys.exit(main())
