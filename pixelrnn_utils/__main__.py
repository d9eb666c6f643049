"""``python -m pixelrnn_utils`` = the ``pixelrnn`` command."""

import sys

from .cli import main

sys.exit(main())
