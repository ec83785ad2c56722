"""The paired timings' worker: one persistent process per commit, running the suite's own
``time_`` code on request (``lossbench.paired`` is the controller).

Started as ``python -c BOOT`` with the commit's ``softmaxloss`` first on ``sys.path`` (a tree
extracted from the commit), this checkout's ``benchmarks/`` loaded by path (as asv loads it)
and ``tools/`` for this module. It imports only the standard library at start, reads one
JSON request a line on stdin and answers one JSON line on stdout:

* ``{"op": "hello"}``: the ``softmaxloss`` it imported, its version, the process id;
* ``{"op": "time", "bench": "bench_time.TimeSoftmaxLoss.time_forward", "params": [...],
  "calls": k}``: ``k`` calls of the benchmark method, each after the class's ``setup`` (as
  asv runs a benchmark with a setup: ``number = 1``; a backward consumes its graph,
  ``fused_inplace`` its logits), each timed alone with the class's ``timer`` (process CPU
  time on the CPU, a synchronised wall clock on CUDA); the answer is the ``k`` durations, or
  ``{"skip": reason}`` when ``setup`` raises ``NotImplementedError``, or ``{"error": ...}``.

Nothing else runs in the process between requests, so two workers answering alternately
are measured seconds apart.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
import traceback


def _load_benchmarks(bench_dir: str) -> None:
    """This checkout's ``benchmarks`` package, imported by path (its parent, a source tree
    of the package, stays off ``sys.path``)."""
    spec = importlib.util.spec_from_file_location(
        "benchmarks", os.path.join(bench_dir, "__init__.py"), submodule_search_locations=[bench_dir]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["benchmarks"] = module
    spec.loader.exec_module(module)


class _Cases:
    def __init__(self) -> None:
        self.instances: dict = {}

    def instance(self, bench: str):
        module_name, cls_name, method = bench.rsplit(".", 2)
        key = (module_name, cls_name)
        if key not in self.instances:
            module = importlib.import_module(f"benchmarks.{module_name}")
            self.instances[key] = getattr(module, cls_name)()
        inst = self.instances[key]
        return inst, getattr(inst, method), type(inst).timer

    def time(self, bench: str, params: list, calls: int) -> dict:
        inst, method, timer = self.instance(bench)
        times = []
        for _ in range(calls):
            try:
                inst.setup(*params)
            except NotImplementedError as exc:
                return {"skip": str(exc) or type(exc).__name__}
            start = timer()
            method(*params)
            times.append(timer() - start)
            teardown = getattr(inst, "teardown", None)
            if teardown is not None:
                teardown(*params)
        return {"times": times}


def main(bench_dir: str) -> None:
    _load_benchmarks(bench_dir)
    cases = _Cases()
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a benchmark prints stays off the answers
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["op"] == "hello":
                import softmaxloss

                answer = {
                    "softmaxloss": softmaxloss.__file__,
                    "version": getattr(softmaxloss, "__version__", "?"),
                    "pid": os.getpid(),
                }
            elif request["op"] == "time":
                answer = cases.time(request["bench"], request["params"], request["calls"])
            else:
                answer = {"error": f"unknown op {request['op']!r}"}
        except Exception as exc:  # the controller reports it as that case's failure
            tail = traceback.format_exc().strip().splitlines()[-3:]
            answer = {"error": f"{type(exc).__name__}: {exc}", "traceback": tail}
        out.write(json.dumps(answer) + "\n")
        out.flush()
