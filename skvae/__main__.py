"""``python -m skvae`` runs the digits demo."""

import sys

from ._demo import main

sys.exit(main())
