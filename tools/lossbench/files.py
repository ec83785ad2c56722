"""Writing result files so that no run can destroy one. A leaf module (errors only).

* :func:`write_atomic`: a file is replaced whole or not at all: the new content goes to a
  temporary file beside it, is flushed to disk, then renamed over the old one. A run killed
  at any point (SIGKILL included) leaves the old file or the new one, never half of one; a
  full disk leaves the old file and raises :class:`ToolError` naming it.
* :func:`move_aside`: a damaged file is renamed beside itself (``NAME.damaged-<time>``,
  never deleted), so that asv, which reads ``*.json`` only, measures that commit again.

``LOSSBENCH_FAILPOINT`` makes a write fail at a chosen point, for the fault-injection tests
(tests/test_faults.py): ``<point>-kill`` kills the process with SIGKILL once the temporary
file is written, before the rename; ``<point>-enospc`` fails the write as a full disk does;
``...:<text>`` only where the file's path contains ``text``. The points: ``store`` (the
tools' own writes into asv's results: the paired timings, the same-package copy) and
``asv-store`` (what asv writes, through ``lossbench.asv_atomic``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from lossbench.errors import ToolError

FAILPOINT = "LOSSBENCH_FAILPOINT"


def failpoint(name: str, path="") -> None:
    """The fault ``LOSSBENCH_FAILPOINT`` asks for at point ``name`` writing ``path``
    (nothing otherwise)."""
    wanted, _, where = os.environ.get(FAILPOINT, "").partition(":")
    if where not in str(path):
        return
    if wanted == f"{name}-kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"{name}-enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def write_atomic(dest, write: Callable[[str], None] | bytes, point: str = "store") -> None:
    """Replaces ``dest`` whole: ``write(tmp_path)`` (or the bytes given) into a temporary
    file in ``dest``'s folder, flushed to disk, then renamed over ``dest``. ``ToolError``
    naming ``dest`` when the disk is full or the folder cannot be written; ``dest`` is then
    as it was."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        if isinstance(write, bytes):
            with os.fdopen(fd, "wb") as f:
                f.write(write)
        else:
            os.close(fd)
            write(tmp)
        failpoint(point, dest)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except OSError as exc:
        _unlink(tmp)
        raise ToolError(f"could not write {dest}: {exc.strerror or exc}") from None
    except BaseException:
        _unlink(tmp)
        raise


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def remove_stale_temporaries(folder) -> list[Path]:
    """Removes the temporary files :func:`write_atomic` left in ``folder`` when its process
    was killed before the rename (``.NAME.*.tmp``: never a result). Call it only where no
    other writer can be at work (under ``lossbench.runner.checkout_lock``)."""
    removed = []
    for path in sorted(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []:
        if path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def move_aside(path) -> Path:
    """Renames ``path`` to ``path.damaged-<UTC time>`` (a number appended if taken); returns
    the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    os.rename(path, target)
    return target
