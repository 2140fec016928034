"""``python -m photocull.cli``."""
import sys

from photocull.cli import main

sys.exit(main())
