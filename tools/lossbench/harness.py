"""The one measurement harness: forward, backward on a fresh graph, forward+backward, and the
peak extra memory of one forward+backward.

``compare`` and ``ratios`` time through ``time_impls`` and so print the same numbers for the
same case; the asv suite (``benchmarks/``) times inside asv, and takes its peak-memory
method, ``extra_bytes``, from this file.

Feeding protocol (``leaf_and_logits``): every call gets a fresh copy of the logits as a
*non-leaf* tensor (``leaf.clone()``, as the output of a layer would be), whose gradient lands
in ``leaf.grad``. ``fused_inplace`` overwrites its logits and refuses a leaf that requires
grad; every other implementation sees the same input as with a leaf. Copies are made outside
the timed and measured regions.

This module imports only torch and the standard library, so the asv suite can load it from
the checkout it runs from, whatever commit of the package it measures.
"""

from __future__ import annotations

import ctypes
import gc
import random
import statistics
import time
from dataclasses import dataclass

import torch

DTYPES = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
"""Every floating dtype the package computes in, by name."""

_M_MMAP_THRESHOLD = -3

ORDER_SEED = 0
"""Seed of ``time_impls``'s per-round order."""


def sync(device) -> None:
    """Waits for queued kernels (CUDA), so a wall clock covers them; a no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seed_case(rows: int, classes: int, dtype: str, seed: int = 0, scale: float = 1.0, device="cpu"):
    """The seed's inputs: standard-normal logits drawn in float64 from ``seed``, times
    ``scale``, rounded to ``dtype``; targets ``arange(rows) % classes``."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, classes, generator=gen, dtype=torch.float64) * scale).to(DTYPES[dtype])
    target = torch.arange(rows) % classes
    return x.to(device), target.to(device)


def leaf_and_logits(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(leaf, logits)``: a fresh leaf copy of ``x`` that requires grad, and ``leaf.clone()``."""
    leaf = x.detach().clone().requires_grad_(True)
    return leaf, leaf.clone()


# ---------------------------------------------------------------------------------------------
# Time


@dataclass(frozen=True)
class Timing:
    """Medians, in seconds, over the timed runs of one implementation."""

    forward: float
    backward: float  # on the graph built by the same run's forward
    total: float  # median of forward + backward per run
    runs: int


def time_one(fn, x: torch.Tensor, target: torch.Tensor, device="cpu") -> tuple[float, float]:
    """One run: ``(forward seconds, backward seconds)``, backward on the graph just built."""
    _, logits = leaf_and_logits(x)
    sync(device)
    t0 = time.perf_counter()
    loss = fn(logits, target)
    sync(device)
    t1 = time.perf_counter()
    loss.backward()
    sync(device)
    return t1 - t0, time.perf_counter() - t1


def time_impls(impls: dict, x: torch.Tensor, target: torch.Tensor, repeats: int, device="cpu"):
    """Times every implementation of ``impls`` (name -> callable) on ``(x, target)``.

    Each is first run once on 8 rows (warm-up; an implementation that raises there is not
    timed), then the runs are interleaved round by round, so a drift of the machine's load
    hits every implementation alike. Each round runs them in a new order (a fixed-seed
    shuffle, the same for every call): a small call's time depends on what ran just before
    it (cold caches), and in a fixed order one entry would always follow the same one. At
    128x100, swapping two entries' places in a fixed order moved one of them from 1.18x to
    0.85x of the other. Returns ``{name: Timing or the exception it raised}``.
    """
    if repeats <= 0:
        raise ValueError(f"repeats must be a positive integer, got {repeats}")
    runs: dict = {}
    for name, fn in impls.items():
        try:
            time_one(fn, x[:8], target[:8], device)
            runs[name] = []
        except Exception as exc:  # one broken implementation must not hide the others
            runs[name] = exc
    live = [name for name, r in runs.items() if isinstance(r, list)]
    order = random.Random(ORDER_SEED)
    for _ in range(repeats):
        order.shuffle(live)
        for name in live:
            runs[name].append(time_one(impls[name], x, target, device))
    out = {}
    for name, r in runs.items():
        if isinstance(r, Exception):
            out[name] = r
            continue
        out[name] = Timing(
            forward=statistics.median(f for f, _ in r),
            backward=statistics.median(b for _, b in r),
            total=statistics.median(f + b for f, b in r),
            runs=len(r),
        )
    return out


# ---------------------------------------------------------------------------------------------
# Memory


def _proc_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise NotImplementedError(f"/proc/self/status has no {field}")


def use_mmap_for_tensors() -> None:
    """Makes every CPU buffer above 64 KiB its own ``mmap``, returned to the kernel when freed.

    glibc's ``mallopt(M_MMAP_THRESHOLD, 64 KiB)`` (which also turns off glibc's adaptive
    threshold). Raises ``NotImplementedError`` without Linux, glibc and ``/proc``.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, 64 * 1024)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError as exc:
        raise NotImplementedError(f"needs Linux, glibc and /proc: {exc}") from exc
    if ok != 1:
        raise NotImplementedError("mallopt(M_MMAP_THRESHOLD) failed")


def _peak_over(prepare, run, device) -> int:
    """Peak bytes above the level after ``prepare()``, over ``run(prepared)``."""
    gc.collect()
    state = prepare()
    if torch.device(device).type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run(state)
        sync(device)
        return torch.cuda.max_memory_allocated() - before
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    before = _proc_bytes("VmRSS")
    run(state)
    return _proc_bytes("VmHWM") - before


def extra_bytes(fn, x: torch.Tensor, target: torch.Tensor, device="cpu") -> int:
    """Bytes one forward+backward of ``fn`` needs above what the process already holds.

    The logits copy (``leaf_and_logits``) is made before the measurement. CPU: torch's CPU
    allocator has no peak counter, so after ``use_mmap_for_tensors`` the peak resident set
    (``VmHWM``, reset by writing ``5`` to ``/proc/self/clear_refs``) minus the resident set
    before the call is the high-water mark of live tensor memory, to a page. CUDA:
    ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus the bytes
    allocated before. One warm-up call first (lazy one-time allocations); the smaller of two
    measured calls, minus the same measurement of a no-op, is returned.
    """
    if torch.device(device).type == "cpu":
        use_mmap_for_tensors()

    def prepare():
        return leaf_and_logits(x)

    def run(state):
        fn(state[1], target).backward()
        sync(device)

    run(prepare())  # warm-up
    used = min(_peak_over(prepare, run, device) for _ in range(2))
    noop = _peak_over(lambda: None, lambda _: None, device)
    return max(used - noop, 0)
