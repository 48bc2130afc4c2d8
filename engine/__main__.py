"""``python -m railstream``: the same as the ``railstream`` command."""

import sys

from .cli import main

sys.exit(main())
