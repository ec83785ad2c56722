"""Memory of forward+backward, for every implementation.

* ``peakmem_forward_backward``: asv's peak resident set size of the benchmark process
  (imports and inputs included). Comparable within one torch build only (the CUDA build's
  baseline is ~2x the CPU build's). On the CPU every tensor buffer is its own mapping here
  too (``harness.use_mmap_for_tensors``, where glibc allows it): with glibc's adaptive
  threshold a buffer just under its 32 MiB ceiling (bfloat16 at 512x32000 or 3200x3200)
  lands on the heap in some processes and not in others, and the same code's peak moved by
  up to 8% between two runs (a false alarm of the gate's memory family, whose threshold is
  5%); with the fixed threshold five fresh processes read the same peak.
* ``track_extra_bytes``: bytes that forward+backward needs *above* what the process already
  holds (inputs included), minus the same measurement of a no-op; this is where ``fused``'s
  saved-gradient design shows, which a ``peakmem_`` ratio hides (41 MB over a ~300 MB process).

How the extra bytes are measured: ``harness.extra_bytes`` (``tools/lossbench/harness.py``,
the method ``python -m lossbench ratios`` uses too). On CPU, glibc's ``M_MMAP_THRESHOLD`` is set
to 64 KiB, so every tensor buffer is its own ``mmap``, and the peak RSS (``VmHWM``, reset via
``/proc/self/clear_refs``) minus the RSS before the call is the high-water mark of live tensor
memory, to a page; needs Linux and glibc, otherwise skipped. On CUDA it is
``torch.cuda.max_memory_allocated``. The fresh non-leaf logits of each call are made before
the measurement. In bytes, whatever the dtype: one bfloat16 logits buffer is half a float32
one.
"""

import contextlib

from benchmarks.common import DEVICES, DTYPES, IMPLS, fresh_logits, harness, prepare, sync

SIZES_MEMORY = ["3200x3200", "512x32000"]


class MemSoftmaxLoss:
    params = [IMPLS, SIZES_MEMORY, DTYPES, DEVICES]
    param_names = ["impl", "size", "dtype", "device"]
    timeout = 120

    def setup(self, impl, size, dtype, device):
        if device == "cpu":  # one peak for the same code (the docstring)
            with contextlib.suppress(NotImplementedError):  # not Linux and glibc: as it is
                harness.use_mmap_for_tensors()
        self.fn, self.logits, self.target = prepare(impl, size, dtype, device)
        self.device = device
        self.x = fresh_logits(self.logits)[1]

    def peakmem_forward_backward(self, impl, size, dtype, device):
        if device == "cuda":
            raise NotImplementedError("peakmem is host RSS; see track_extra_bytes for CUDA")
        self.fn(self.x, self.target).backward()
        sync(device)

    def track_extra_bytes(self, impl, size, dtype, device):
        return harness.extra_bytes(self.fn, self.logits, self.target, device)

    track_extra_bytes.unit = "bytes"
