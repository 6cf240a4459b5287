"""``python -m facewear VERB ...``: the ``facewear`` command without an installed entry point (a bare GPU machine
with the repository on ``PYTHONPATH``)."""
import sys

from .cli import main

sys.exit(main())
