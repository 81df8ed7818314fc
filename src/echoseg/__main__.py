"""``python -m echoseg``: the same CLI as the ``echoseg`` command."""

import sys

from echoseg.cli import main

sys.exit(main())
