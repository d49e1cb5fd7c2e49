"""``python -m ddpmkit ...``: the same as the ``ddpmkit`` command (useful where the script is not on PATH)."""
import sys

from .cli import main

sys.exit(main())
