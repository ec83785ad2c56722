"""The paired timings' series (``lossbench.paired``, docs/gate.md): the grids of bench_time's
``TimeSoftmaxLoss`` and bench_threads' ``TimeThreads``, timed by the gate's persistent
workers (BASE and HEAD alternating, seconds apart), never by ``asv run`` (skipped here).
The gate writes what it measured under these names into asv's results, so that the site
draws the paired timings as series of their own, apart from asv's."""

# the modules, not their classes: asv would discover an imported class here as a benchmark
# of this module too, and run it
from benchmarks import bench_threads, bench_time


class PairedTimeSoftmaxLoss(bench_time.TimeSoftmaxLoss):
    def setup(self, impl, size, dtype, device):
        raise NotImplementedError("timed by the gate's paired workers (lossbench.paired)")


class PairedTimeThreads(bench_threads.TimeThreads):
    def setup(self, impl, size, dtype, threads):
        raise NotImplementedError("timed by the gate's paired workers (lossbench.paired)")
