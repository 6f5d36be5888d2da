"""Regenerate fig2_channel_cost only: same as ``chansim figures --only fig2_channel_cost`` (other options pass through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "fig2_channel_cost", *sys.argv[1:]]))
