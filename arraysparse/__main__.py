"""``python -m arraysparse``: the command line (see :mod:`arraysparse.cli`)."""

import sys

from arraysparse.cli import main

if __name__ == "__main__":
    sys.exit(main())
