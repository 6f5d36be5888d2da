"""Regenerate fig3_acceptance_vs_k only: same as ``chansim figures --only fig3_acceptance_vs_k`` (other options pass through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "fig3_acceptance_vs_k", *sys.argv[1:]]))
