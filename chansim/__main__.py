"""``python -m chansim``: the same command line as the ``chansim`` script (:mod:`chansim.cli`)."""
import sys

from .cli import main

if __name__ == "__main__":  # pragma: no branch
    sys.exit(main())
