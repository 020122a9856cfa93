"""``python -m genre.cli``: the ``genre`` command."""

import sys

from genre.cli import main

sys.exit(main())
