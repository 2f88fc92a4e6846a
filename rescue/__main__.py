"""``python -P -m rescue``: the same as the ``rescue`` program."""

import sys

from rescue.cli import main

sys.exit(main())
