"""``python -m stream``: the same as the ``driftline`` command."""

import sys

from stream.cli import main

sys.exit(main())
