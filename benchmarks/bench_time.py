"""Speed: forward, backward and forward+backward of every implementation.

``time_backward`` times ``loss.backward()`` alone: asv_runner re-runs ``setup`` before every
sample with ``number = 1``, so ``setup`` builds a fresh graph (one forward) for each sample and
the timed call consumes it. No ``retain_graph=True``: it would keep saved tensors alive and
let the second and later backward passes skip the frees a real training step pays for.

One class per device, for the timer: ``TimeSoftmaxLoss`` (CPU) times the process's CPU
time, ``TimeSoftmaxLossCUDA`` the wall clock with a synchronize (benchmarks/common.py).
"""

from benchmarks.common import (
    DTYPES,
    DTYPES_SLOW,
    IMPLS,
    SIZES,
    SIZES_VOCAB,
    CPUTimeBenchmark,
    CUDATimeBenchmark,
    fresh_logits,
    prepare,
    sync,
)


class _TimeMethods:
    """forward, backward on a fresh graph, forward+backward (asv skips ``_`` names)."""

    def setup(self, impl, size, dtype, device):
        # asv re-runs setup before every sample (number = 1): each timed call gets fresh
        # non-leaf logits, made here (fused_inplace overwrites them)
        self.fn, logits, self.target = prepare(impl, size, dtype, device)
        self.device = device
        self.x = fresh_logits(logits)[1]
        self.loss = self.fn(fresh_logits(logits)[1], self.target)
        sync(device)

    def time_forward(self, impl, size, dtype, device):
        self.fn(self.x, self.target)
        sync(device)

    def time_backward(self, impl, size, dtype, device):
        self.loss.backward()
        sync(device)

    def time_forward_backward(self, impl, size, dtype, device):
        self.fn(self.x, self.target).backward()
        sync(device)


class TimeSoftmaxLoss(_TimeMethods, CPUTimeBenchmark):
    """The gate's grid on the CPU: small, seed-sized (3200x3200) and classifier-shaped."""


class TimeSoftmaxLossCUDA(_TimeMethods, CUDATimeBenchmark):
    """The gate's grid on a GPU (skipped without one)."""


class _SlowCases:
    """Vocabulary-sized and float64 cases; excluded from ``make gate`` (it selects by -b)."""

    timeout = 300

    def setup(self, impl, size, dtype, device):
        if size in SIZES and dtype in DTYPES:
            raise NotImplementedError("covered by TimeSoftmaxLoss")
        super().setup(impl, size, dtype, device)


class SlowTimeSoftmaxLoss(_SlowCases, TimeSoftmaxLoss):
    params = [IMPLS, ["3200x3200", *SIZES_VOCAB], DTYPES_SLOW, ["cpu"]]


class SlowTimeSoftmaxLossCUDA(_SlowCases, TimeSoftmaxLossCUDA):
    params = [IMPLS, ["3200x3200", *SIZES_VOCAB], DTYPES_SLOW, ["cuda"]]
