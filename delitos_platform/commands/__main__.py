"""``python -m delitos_platform.commands``: the ``delitos`` command without its console script."""

import sys

from delitos_platform.commands import main

sys.exit(main())
