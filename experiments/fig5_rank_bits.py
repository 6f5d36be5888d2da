"""Regenerate fig5_rank_bits only: same as ``chansim figures --only fig5_rank_bits`` (other options pass through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "fig5_rank_bits", *sys.argv[1:]]))
