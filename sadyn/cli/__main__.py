"""``python -m sadyn.cli``: the ``sadyn`` command without its console script."""

import sys

from sadyn.cli import main

sys.exit(main())
