"""``python -m kmbayes`` is the same as the ``kmbayes`` console script."""

import sys

from .cli import main

sys.exit(main())
