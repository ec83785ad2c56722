"""Memory of forward+backward, for every implementation.

* ``peakmem_forward_backward``: asv's peak resident set size of the benchmark process
  (imports and inputs included). Comparable within one torch build only (the CUDA build's
  baseline is ~2x the CPU build's).
* ``track_extra_bytes``: bytes that forward+backward needs *above* what the process already
  holds (inputs included), minus the same measurement of a no-op; this is where ``fused``'s
  saved-gradient design shows, which a ``peakmem_`` ratio hides (41 MB over a ~300 MB process).

How the extra bytes are measured on CPU: torch's CPU allocator has no peak counter, so the
benchmark sets glibc's ``M_MMAP_THRESHOLD`` to 64 KiB with ``mallopt`` (which also turns off
glibc's adaptive threshold), so every tensor buffer larger than that is its own ``mmap`` and
is returned to the kernel when freed. Then the peak RSS (``VmHWM``, reset by writing ``5`` to
``/proc/self/clear_refs``) minus the RSS before the call is the high-water mark of live tensor
memory, to a page. Needs Linux and glibc, otherwise skipped. On CUDA it is
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the allocated
bytes before. The first call warms lazy allocations up; the second is the one recorded.
"""

import ctypes
import gc

import torch

from benchmarks.common import DEVICES, IMPLS, prepare, sync

SIZES_MEMORY = ["3200x3200", "512x32000"]
_M_MMAP_THRESHOLD = -3


def _proc_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise NotImplementedError(f"/proc/self/status has no {field}")


def _use_mmap_for_tensors() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        raise NotImplementedError(f"needs Linux, glibc and /proc: {exc}") from exc
    if ok != 1:
        raise NotImplementedError("mallopt(M_MMAP_THRESHOLD) failed")


def _extra_bytes(fn, device: str) -> int:
    gc.collect()
    if device == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated() - before
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _proc_bytes("VmRSS")
    fn()
    return _proc_bytes("VmHWM") - before


class MemSoftmaxLoss:
    params = [IMPLS, SIZES_MEMORY, ["float32"], DEVICES]
    param_names = ["impl", "size", "dtype", "device"]
    timeout = 120

    def setup(self, impl, size, dtype, device):
        self.fn, self.logits, self.target = prepare(impl, size, dtype, device)
        self.device = device

    def _step(self):
        x = self.logits.detach().requires_grad_(True)
        self.fn(x, self.target).backward()
        sync(self.device)

    def peakmem_forward_backward(self, impl, size, dtype, device):
        if device == "cuda":
            raise NotImplementedError("peakmem is host RSS; see track_extra_bytes for CUDA")
        self._step()

    def track_extra_bytes(self, impl, size, dtype, device):
        if device == "cpu":
            _use_mmap_for_tensors()
        self._step()  # warm-up: lazy one-time allocations
        used = min(_extra_bytes(self._step, device) for _ in range(2))
        noop = _extra_bytes(lambda: None, device)
        return max(used - noop, 0)

    track_extra_bytes.unit = "bytes"
