"""``python -m mlsysgym``: the same command line as the ``mlsysgym`` script."""

from __future__ import annotations

import sys

from mlsysgym.cli import main

if __name__ == "__main__":
    sys.exit(main())
