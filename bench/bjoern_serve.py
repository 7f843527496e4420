"""bjoern serving one of the benchmark's apps: ``python -m bench.bjoern_serve APP HOST:PORT``.

bjoern has no command line of its own; this is the few lines a bjoern user writes. It is one
process with one thread, so it stands next to the servers run with one worker.
"""

from __future__ import annotations

import sys

import bjoern

from bench import apps


def main() -> None:
    app, bind = sys.argv[1:]
    host, port = bind.rsplit(":", 1)
    bjoern.run(getattr(apps, app), host, int(port))


if __name__ == "__main__":
    main()
