#!/usr/bin/env python3
"""isonet.py: the command line of isonet (see ``isonet.py --help``)."""

import os
import sys

# This script is named like the package: drop its own folder from the import path so that
# ``import isonet`` finds the package, and prefer the checkout this script sits in, if any.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
_CHECKOUT = os.path.dirname(_HERE)
if os.path.isfile(os.path.join(_CHECKOUT, "isonet", "__init__.py")):
    sys.path.insert(0, _CHECKOUT)

from isonet.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
