"""A memory-family benchmark (stand-in project): bytes, deterministic."""


class MemSoftmaxLoss:
    params = [["manual", "fused"]]
    param_names = ["impl"]

    def setup(self, impl):
        import softmaxloss

        self.work = softmaxloss.work

    def track_extra_bytes(self, impl):
        return 4096 * (2 if impl == "manual" else 1)

    track_extra_bytes.unit = "bytes"
