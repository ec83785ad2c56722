"""``make`` as a user types it in a shell, for the slow tests that run a Makefile target."""

from __future__ import annotations

import subprocess
import sys


def make(cwd, *args: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """``make --no-print-directory ARGS PYTHON=<this interpreter>`` in ``cwd``: not under
    an outer make (its MAKEFLAGS, MFLAGS and MAKELEVEL dropped), no stdin, output captured."""
    env = {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(
        ["make", "--no-print-directory", *args, f"PYTHON={sys.executable}"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )
