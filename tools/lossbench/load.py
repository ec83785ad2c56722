"""How busy the machine was with other work: from the kernel's CPU counters (Linux
``/proc``), in cores. A leaf module (standard library only).

* :func:`busy_cores`: the cores other processes kept busy over one short wait (this process
  sleeps through it);
* :class:`Sampler`: a background thread sampling, once a ``interval``, the cores kept busy
  by everything **but this process and its descendants** (the paired timings' workers, an
  asv run): what a run shared the machine with while it measured.

Where there is no ``/proc`` there is no figure (None), never a made-up one.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path


def _cpu_ticks(stat: str = "/proc/stat") -> tuple[int, int]:
    """(all ticks, idle + iowait ticks) of every core since boot."""
    with open(stat) as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    return sum(fields), fields[3] + fields[4]


def busy_cores(seconds: float = 1.0, stat: str = "/proc/stat") -> float | None:
    """Cores kept busy by other processes over ``seconds`` while this one waits, or None
    where there are no counters."""
    try:
        total0, idle0 = _cpu_ticks(stat)
        time.sleep(seconds)
        total1, idle1 = _cpu_ticks(stat)
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


def _ticks(pid: int, proc: str) -> tuple[int, int] | None:
    """(parent pid, user + system ticks) of ``pid`` from ``/proc/<pid>/stat``, or None when
    it has exited."""
    try:
        text = (Path(proc) / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ... utime stime": comm may hold spaces and parentheses
    rest = text[text.rindex(")") + 2 :].split()
    return int(rest[1]), int(rest[11]) + int(rest[12])


def _children(pid: int, proc: str) -> list[int] | None:
    """The children of ``pid`` from ``/proc/<pid>/task/*/children`` (None where the kernel
    does not keep that list)."""
    tasks = Path(proc) / str(pid) / "task"
    found, out = False, []
    for task in tasks.iterdir() if tasks.is_dir() else ():
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
            found = True
        except OSError:
            continue
    return out if found else None


def tree_ticks(root: int, proc: str = "/proc") -> int:
    """CPU ticks (user + system) of process ``root`` and all its descendants (processes that
    exit meanwhile are left out): a walk down the kernel's lists of children, a few reads,
    or a scan of every process where the kernel keeps no such list."""
    if _children(root, proc) is None:
        return _tree_ticks_by_scan(root, proc)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        got = _ticks(pid, proc)
        if got is not None:
            total += got[1]
            todo += _children(pid, proc) or []
    return total


def _tree_ticks_by_scan(root: int, proc: str) -> int:
    children: dict[int, list[int]] = {}
    ticks = {}
    for entry in Path(proc).iterdir():
        if entry.name.isdigit() and (got := _ticks(int(entry.name), proc)) is not None:
            children.setdefault(got[0], []).append(int(entry.name))
            ticks[int(entry.name)] = got[1]
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += children.get(pid, [])
    return total


class Sampler:
    """``with Sampler() as s: ...``: the cores other work kept busy, one sample per
    ``interval`` seconds while the block runs (``s.samples``)."""

    def __init__(self, interval: float = 2.0, stat: str = "/proc/stat", proc: str = "/proc"):
        self.interval, self.stat, self.proc = interval, stat, proc
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def read(self) -> tuple[int, int, int]:
        """(all ticks, busy ticks, this process tree's ticks) now."""
        total, idle = _cpu_ticks(self.stat)
        return total, total - idle, tree_ticks(os.getpid(), self.proc)

    @staticmethod
    def other_cores(before, after, cores: int) -> float | None:
        """Cores busy with other work between two :meth:`read` s: all busy ticks less this
        process tree's, as a share of all ticks, times the cores."""
        total = after[0] - before[0]
        if total <= 0:
            return None
        other = (after[1] - before[1]) - (after[2] - before[2])
        return min(max(other / total * cores, 0.0), float(cores))

    def _run(self) -> None:
        cores = os.cpu_count() or 1
        try:
            last = self.read()
        except (OSError, ValueError, IndexError):
            return
        while not self._stop.wait(self.interval):
            try:
                now = self.read()
            except (OSError, ValueError, IndexError):
                return
            if (other := self.other_cores(last, now, cores)) is not None:
                self.samples.append(other)
            last = now

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str | None:
        """``median (min-max, N samples)`` in cores, or None without samples."""
        if not self.samples:
            return None
        s = self.samples
        return (
            f"{statistics.median(s):.1f} of {os.cpu_count() or 1} cores (median; "
            f"{min(s):.1f}-{max(s):.1f} over {len(s)} samples of {self.interval:g} s)"
        )
