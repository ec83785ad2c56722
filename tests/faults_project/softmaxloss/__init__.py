"""A stand-in for the loss (tests/faults_project/README.md): ``work(n)`` sums ``n`` squares.

``SOFTMAXLOSS_FAULT`` makes it misbehave, only inside a paired timing worker (the gate's
``lossbench.paired_worker``) whose package has ``FAULTY = True`` (the test's HEAD), from its
``FAULT_AFTER``-th call on: ``die`` (SIGKILL itself), ``hang`` (sleep for an hour),
``garbage`` (write a line to the worker's real stdout), ``import`` (fail to import); and
``asv-hang``: HEAD's package hangs in every call outside a worker (under asv).
"""

import os
import signal
import sys
import time

FAULTY = False
FAULT_AFTER = 8
_calls = [0]


def _in_worker() -> bool:
    return "lossbench.paired_worker" in sys.modules


def _fault() -> str:
    return os.environ.get("SOFTMAXLOSS_FAULT", "") if FAULTY and _in_worker() else ""


if _fault() == "import":
    raise ImportError("softmaxloss: SOFTMAXLOSS_FAULT=import")


def work(n: int) -> int:
    _calls[0] += 1
    if FAULTY and not _in_worker() and os.environ.get("SOFTMAXLOSS_FAULT") == "asv-hang":
        time.sleep(3600)
    fault = _fault() if _calls[0] >= FAULT_AFTER else ""
    if fault == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    elif fault == "hang":
        time.sleep(3600)
    elif fault == "garbage":
        os.write(1, b"a stray line on the worker's stdout\n")
    return sum(i * i for i in range(n))
