"""Speed: forward, backward and forward+backward of every implementation.

``time_backward`` times ``loss.backward()`` alone: asv_runner re-runs ``setup`` before every
sample with ``number = 1``, so ``setup`` builds a fresh graph (one forward) for each sample and
the timed call consumes it. No ``retain_graph=True``: it would keep saved tensors alive and
let the second and later backward passes skip the frees a real training step pays for.
"""

from benchmarks.common import (
    DEVICES,
    DTYPES_SLOW,
    IMPLS,
    SIZES_VOCAB,
    Benchmark,
    fresh_logits,
    prepare,
    sync,
)


class TimeSoftmaxLoss(Benchmark):
    """The gate's grid: small, seed-sized (3200x3200) and classifier-shaped inputs."""

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


class SlowTimeSoftmaxLoss(TimeSoftmaxLoss):
    """Vocabulary-sized and float64 cases; excluded from ``make gate`` (it selects by -b)."""

    params = [IMPLS, ["3200x3200", *SIZES_VOCAB], DTYPES_SLOW, DEVICES]
    timeout = 300

    def setup(self, impl, size, dtype, device):
        if (size, dtype) == ("3200x3200", "float32"):
            raise NotImplementedError("covered by TimeSoftmaxLoss")
        super().setup(impl, size, dtype, device)
