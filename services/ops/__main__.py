"""``python -m services.ops`` — the same as the ``thuvien`` command."""

import sys

from services.ops import main

sys.exit(main())
