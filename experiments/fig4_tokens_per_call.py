"""Regenerate fig4_tokens_per_call only: same as ``chansim figures --only fig4_tokens_per_call`` (other options pass through)."""
import sys

from chansim.cli import main

if __name__ == "__main__":
    sys.exit(main(["figures", "--only", "fig4_tokens_per_call", *sys.argv[1:]]))
