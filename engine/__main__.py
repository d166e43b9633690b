"""``python -m tilerun``: the ``tilerun`` command line (``tilerun.cli.main``)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
