"""The ``tilerun`` command line (placeholder until the run command lands)."""
import sys


def main(argv=None):
    """Entry point of the ``tilerun`` console script."""
    print("tilerun", file=sys.stderr)
    return 0
