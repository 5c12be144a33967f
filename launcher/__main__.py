"""``python -m launcher``: run Veil on this machine with one command (see ``launcher.chain``)."""

from __future__ import annotations

import sys

from launcher.chain import main

if __name__ == "__main__":
    sys.exit(main())
