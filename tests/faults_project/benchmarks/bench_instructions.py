"""The instruction and cycle families (stand-in project): a count that needs valgrind, as
the suite's does, and fails without it (a skip would be stored and never measured again)."""

import shutil


class _Counted:
    params = [["manual", "fused"]]
    param_names = ["impl"]

    def setup(self, impl):
        if shutil.which("valgrind") is None:
            raise RuntimeError("valgrind is not installed: nothing here is counted")


class InstructionsSoftmaxLoss(_Counted):
    def track_forward(self, impl):
        return 1000 if impl == "manual" else 800

    track_forward.unit = "instructions"


class CacheSoftmaxLoss(_Counted):
    def track_cycles_forward(self, impl):
        return 5000 if impl == "manual" else 4000

    track_cycles_forward.unit = "cycles"
