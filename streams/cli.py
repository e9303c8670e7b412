"""`safeguarding ...`: the command line of SPEC section 7."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("safeguarding: under construction", file=sys.stderr)
    return 2
