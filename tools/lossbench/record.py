"""Measurement records: the machine-readable output of a measuring command, as run.

A command given ``--record PATH`` (``compare``, ``ratios``, ``overhead``, ``depth``,
``timed``) writes one JSON file there: its command line, the commit measured (and whether
the package or the tools differed from it), the date, the machine (CPU model, its flags, the
vector instruction set, cores, memory), the load before and after (``/proc/loadavg``), the
Python and torch versions, the variables that change what is measured (``SOFTMAXLOSS_*``,
``OMP_*``, ``MKL_*``), and the command's numbers under ``result``. The documentation's
tables are rendered from these files (``python -m lossbench docs render``), so a number in
the docs always has its conditions beside it.

A record is written whole through a temporary file and a rename; an earlier record at the
same path is replaced (re-measuring is the point; git keeps the earlier one).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import shlex
import time
from importlib import metadata
from pathlib import Path

from lossbench import files, runner
from lossbench.errors import ToolError

SCHEMA = 1
PROGRAM = "python -m lossbench"
# Variables that change what a measurement measures: the package's switches, the threads.
ENVIRONMENT = ("SOFTMAXLOSS_", "OMP_", "MKL_")
# The folders whose state at the measured commit matters: the package measured and the tools
# measuring it (a record made with either edited says so).
MEASURED_PATHS = ("softmaxloss", "tools", "benchmarks", "pyproject.toml")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def vector_isa(flags: list[str]) -> str:
    """The widest x86 vector instruction set the flags name, as the docs say it."""
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return "no AVX2"


def machine() -> dict:
    """CPU model and flags, cores, memory, the operating system."""
    info = _cpuinfo()
    flags = info.get("flags", "").split()  # kept as one line of text, as the kernel gives it
    memory = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 2**20, 1)  # kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu": info.get("model name") or platform.processor() or platform.machine(),
        "vector_isa": vector_isa(flags) if flags else None,
        "flags": " ".join(flags),
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
    }


def load() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def commit_state(repo) -> dict:
    """The commit checked out in ``repo`` and the measured paths that differ from it."""
    try:
        commit = runner.git(repo, "rev-parse", "HEAD")
        changed = runner.git(repo, "status", "--porcelain", "--", *MEASURED_PATHS)
    except ToolError:
        return {"commit": None, "changed": []}
    return {"commit": commit, "changed": sorted({line[3:] for line in changed.splitlines()})}


class Recorder:
    """Started before a measurement (date, load, clock), written after it."""

    def __init__(self, argv):
        """``argv``: the command's arguments after ``python -m lossbench``."""
        self.command = shlex.join([*shlex.split(PROGRAM), *argv])
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.load_before = load()
        self.clock = time.monotonic()

    def document(self, result) -> dict:
        torch_version = _version("torch")
        return {
            "schema": SCHEMA,
            "command": self.command,
            **commit_state("."),
            "date": self.started.isoformat(timespec="seconds"),
            "seconds": round(time.monotonic() - self.clock, 1),
            "machine": machine(),
            "load": {"before": self.load_before, "after": load()},
            "python": platform.python_version(),
            "torch": torch_version,
            "environment": {
                k: v for k, v in sorted(os.environ.items()) if k.startswith(ENVIRONMENT)
            },
            "result": json_safe(result),
        }

    def write(self, path, result) -> Path:
        return write(path, self.document(result))


def json_safe(obj):
    """``obj`` with every non-finite float as a string (``"inf"``, ``"-inf"``, ``"nan"``):
    JSON has no such numbers, and a record must keep them."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def write(path, document: dict) -> Path:
    """The record, whole or not at all (``files.write_atomic``)."""
    text = json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n"
    files.write_atomic(path, text.encode(), point="record")
    return Path(path)


def read(path) -> dict:
    return json.loads(Path(path).read_text())
