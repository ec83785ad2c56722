"""A precision-family benchmark (stand-in project): eps, deterministic."""


class PrecisionSoftmaxLoss:
    params = [["manual", "fused"]]
    param_names = ["impl"]
    timeout = 5  # asv's: a hang in the package ends here (tests/test_faults.py)

    def setup(self, impl):
        import softmaxloss

        self.value = softmaxloss.work(10) / 285

    def track_grad_error(self, impl):
        return 0.5 * self.value

    track_grad_error.unit = "eps"
