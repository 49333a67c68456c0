"""``branch-pad``: the PAD (tablet / counter) app.

The Qt app itself arrives with the PAD issue; until then this entry point
reports its version and what is available, so packaging and service files can
already refer to it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import version


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="branch-pad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        print(f"branch-pad {version('branch-edge')}")
        return 0
    print("branch-pad: the PAD app is not part of this release yet; see README 'Roadmap'.",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
