"""Regenerate fig6_real_models only: same as ``chansim figures --only fig6_real_models`` (other options pass through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "fig6_real_models", *sys.argv[1:]]))
