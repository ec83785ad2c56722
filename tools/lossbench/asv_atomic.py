"""``python -m lossbench.asv_atomic ARGS``: asv's own command line (``python -m asv ARGS``)
with every JSON file it writes replaced whole or not at all.

asv 0.6.6 writes its result files in place (``asv.util.write_json`` opens the file for
writing and dumps into it): a run killed while it saves, or a full disk, leaves a truncated
file, and every later asv command that reads it fails. :func:`install` routes
``write_json`` through :func:`lossbench.files.write_atomic` (a temporary file beside it,
flushed, renamed over the old one). Every asv run of the tools (``lossbench.runner.run_asv``)
starts asv this way, and the tools' own writes into asv's results (the paired timings, the
same-package copy) call :func:`install` first.
"""

from __future__ import annotations

import sys

from lossbench.files import write_atomic


def install(point: str = "store") -> None:
    """Makes ``asv.util.write_json`` atomic in this process (once); ``point``: its name for
    ``LOSSBENCH_FAILPOINT`` (lossbench.files)."""
    from asv import util

    if getattr(util.write_json, "atomic", False):
        return
    original = util.write_json

    def write_json(path, data, api_version=None, compact=False):
        write_atomic(path, lambda tmp: original(tmp, data, api_version, compact), point)

    write_json.atomic = True
    util.write_json = write_json


def main() -> None:
    install("asv-store")
    from asv.main import main as asv_main

    sys.argv[0] = "asv"
    asv_main()


if __name__ == "__main__":
    main()
