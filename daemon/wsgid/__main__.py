"""`python -m wsgid`: the same entry point as the `wsgid` console script."""

import sys

from wsgid.cli import main

sys.exit(main())
