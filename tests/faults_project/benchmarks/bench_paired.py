"""The paired timings' stored series (as the suite's): skipped by asv run."""

from benchmarks import bench_time


class PairedTimeSoftmaxLoss(bench_time.TimeSoftmaxLoss):
    def setup(self, impl, size):
        raise NotImplementedError("timed by the gate's paired workers (lossbench.paired)")
