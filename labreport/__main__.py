"""`labreport` and `python -m labreport`: the CLI, imported inside a guard, so that Ctrl-C in
the fraction of a second Python takes to load it is an interrupt like any other (exit 130, one
error line), not a traceback."""

from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from labreport import cli
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\nhint: nothing was done; run the command again\n")
        sys.stderr.flush()
        os._exit(130)  # nothing to clean up yet; a normal exit may die of the same signal
    cli.main()


if __name__ == "__main__":
    main()
