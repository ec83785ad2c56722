"""The gate's timed grid, by the suite's names (stand-in project)."""

import time


class TimeSoftmaxLoss:
    params = [["manual", "fused"], ["small"]]
    param_names = ["impl", "size"]
    timer = time.process_time
    timeout = 20

    def setup(self, impl, size):
        import softmaxloss

        self.work = softmaxloss.work
        self.n = 20000 if impl == "manual" else 10000

    def time_forward(self, impl, size):
        self.work(self.n)
