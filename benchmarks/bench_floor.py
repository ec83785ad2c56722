"""The floor under the one-pass loss: one in-place ``exp_`` over the same logits.

``fused_inplace`` reads every logit, evaluates one exponential of it and writes its gradient
over it; no loss of these logits does less than that one pass. ``TimeFloor.time_exp_``
times it the way ``bench_time.TimeSoftmaxLoss`` times the losses (one thread, process CPU
time, fresh non-leaf logits made in ``setup``), ``TimeFloorThreads.time_exp_`` the way
``bench_threads.TimeThreads`` does (two threads, the wall clock): ``fused_inplace``'s
``time_forward_backward`` (``time_forward`` + ``time_backward`` at two threads) over
``time_exp_`` of the same size and dtype is how far the loss is from its floor.

A torch operation, the same at every commit of the package: not in the gate's selection
(``lossbench.gate.GATE_BENCH``), on the site only.
"""

import timeit

import torch

# the modules, not their classes: asv would discover an imported class here as a benchmark
# of this module too, and run it
from benchmarks import bench_threads, bench_time
from benchmarks.common import (
    Benchmark,
    CPUTimeBenchmark,
    fix_threads,
    fresh_logits,
    make_inputs,
    require_cores,
)


class TimeFloor(CPUTimeBenchmark):
    """bench_time's grid on the CPU (sizes, dtypes)."""

    params = bench_time.TimeSoftmaxLoss.params[1:]
    param_names = ["size", "dtype", "device"]

    def setup(self, size, dtype, device):
        fix_threads()
        self.x = fresh_logits(make_inputs(size, dtype, device)[0])[1]

    def time_exp_(self, size, dtype, device):
        self.x.exp_()


class TimeFloorThreads(Benchmark):
    """bench_threads' grid (sizes, dtypes, threads)."""

    params = bench_threads.TimeThreads.params[1:]
    param_names = ["size", "dtype", "threads"]
    timer = staticmethod(timeit.default_timer)  # the threads' work overlaps: the wall clock

    def setup(self, size, dtype, threads):
        require_cores(threads)
        torch.set_num_threads(threads)
        self.x = fresh_logits(make_inputs(size, dtype, "cpu")[0])[1]

    def time_exp_(self, size, dtype, threads):
        self.x.exp_()
