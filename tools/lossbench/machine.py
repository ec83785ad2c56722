"""asv's machine name and launch options for this host (``python -m lossbench machine``).

``machine_name()``: the host name, plus ``-cuda-<gpu>`` when nvidia-smi reports a GPU (CUDA
results must not mix with CPU-only results of the same host).
``launch_args()``: ``--launch-method spawn`` on a CUDA host (CUDA
cannot be re-initialised in a forked child), nothing otherwise: CPU runs keep the
``launch_method`` of asv.conf.json, forkserver (spawn, asv 0.6.6's "auto", costs ~1 s per
benchmark process here).
The GPU is detected with nvidia-smi, not torch: the benchmarked torch lives in asv's
environment, not in the interpreter running make.
"""

import re
import shutil
import socket
import subprocess


def gpu_name() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    names = [line.strip() for line in out.splitlines() if line.strip()]
    return names[0] if names else None


def machine_name() -> str:
    """asv's machine name for this host: the host name, plus ``-cuda-<gpu>`` with a GPU."""
    name = socket.gethostname().split(".")[0] or "localhost"
    gpu = gpu_name()
    if gpu:
        name += "-cuda-" + re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    return name


def launch_args() -> str:
    """Extra ``asv run`` options: ``--launch-method spawn`` on a CUDA host, else nothing."""
    return "--launch-method spawn" if gpu_name() else ""
