"""Regenerate every figure: same as ``chansim figures`` (options are passed through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", *sys.argv[1:]]))
