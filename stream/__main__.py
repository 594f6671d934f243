"""``python -m driftline``: the same as the ``driftline`` command."""

import sys

from driftline.cli.main import main

sys.exit(main())
