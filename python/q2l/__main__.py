"""``python -m q2l`` is the ``q2l`` command."""

import sys

from .app.cli import main

sys.exit(main())
