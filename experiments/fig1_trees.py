"""Regenerate fig1_trees only: same as ``chansim figures --only fig1_trees`` (other options pass through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "fig1_trees", *sys.argv[1:]]))
