"""``python -m pgtq.cli``: the ``pgtq`` command."""

import sys

from pgtq.cli import main

sys.exit(main())
