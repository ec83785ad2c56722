"""Speed with two intra-op threads, by the wall clock: where a loss of parallelism shows.

Every other timing runs on one thread in process CPU time, which adds the threads' time up,
and callgrind runs threads one at a time: neither sees the C++ Functions' row loops
(``at::parallel_for``) fall back to one thread, as they did once when built without
``-fopenmp`` (1.4x slower than the Python Functions at 3200x3200 on two threads). Here the
wall clock of a call with ``threads`` threads does. ``threads`` is a fixed parameter: where
the machine has fewer cores the combination is skipped, never run on fewer threads.
"""

import timeit

import torch

from benchmarks.common import Benchmark, fresh_logits, prepare, require_cores, sync

THREADS = [2]


class TimeThreads(Benchmark):
    params = [["manual", "fused", "fused_inplace", "torch"], ["1024x1000", "3200x3200"],
              ["float32"], THREADS]  # fmt: skip
    param_names = ["impl", "size", "dtype", "threads"]
    timer = staticmethod(timeit.default_timer)  # the threads' work overlaps: the wall clock

    def setup(self, impl, size, dtype, threads):
        require_cores(threads)
        self.fn, logits, self.target = prepare(impl, size, dtype, "cpu")
        torch.set_num_threads(threads)  # after prepare, which sets one
        self.x = fresh_logits(logits)[1]
        self.loss = self.fn(fresh_logits(logits)[1], self.target)

    def time_forward(self, impl, size, dtype, threads):
        self.fn(self.x, self.target)
        sync("cpu")

    def time_backward(self, impl, size, dtype, threads):
        self.loss.backward()
