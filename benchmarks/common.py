"""Shared grids, data makers and device helpers of the asv suite.

Conventions (numpy's and scipy's suites):

* ``params`` never depend on the hardware or on the commit being measured. ``IMPLS`` is a
  fixed list of implementation names, optional ones included (``compiled``, ``triton``, ...).
  Implementations are looked up in ``softmaxloss.IMPLEMENTATIONS`` inside ``setup``, never
  imported: a name the measured commit does not register (an older commit, no GPU, no
  compiler) raises ``NotImplementedError`` (asv: skipped), never ``KeyError``, so
  ``asv continuous`` between an old and a new commit still prints its table.
* Combinations that cannot run raise ``NotImplementedError`` in ``setup``: ``cuda`` without
  ``torch.cuda.is_available()``, and any implementation that raises
  ``softmaxloss.UnsupportedDtypeError`` for the dtype (the naive pair on bfloat16); any other
  error, a plain ``TypeError`` included, fails that implementation's own benchmarks only,
  where the gate sees it.
* ``size`` is ``"ROWSxCLASSES"``. Inputs are drawn from a fixed seed, so every run and every
  commit sees the same numbers.
* One intra-op thread (``torch.set_num_threads(1)``, set in every ``setup``): on a shared
  2-core machine multi-threaded timings are mostly scheduler noise.
* ``setup`` must stay cheap: asv_runner re-runs ``setup`` before *every* timed sample and
  forces ``number = 1`` when a benchmark has a setup. Inputs therefore come from a small
  per-process cache (``make_inputs``); only the first sample pays for drawing them, and for
  one warm-up forward+backward of the implementation on them (``prepare``).
* Timings exclude compilation: the warm-up compiles the ``torch.compile`` entries for the
  case's shape, with their caches kept inside the benchmark environment
  (``keep_compile_cache_in_env``, under asv's ``ASV_ENV_DIR``). Compilation has its own
  benchmark (bench_compile.py).
* Every call gets fresh *non-leaf* logits (``fresh_logits``: a leaf copy's ``clone()``, as a
  layer's output would be), made in ``setup``, outside the timed call: ``fused_inplace``
  overwrites its logits and refuses a leaf.
* CUDA: every timed call ends with ``sync()`` (``torch.cuda.synchronize``), so the wall clock
  covers the kernels; ``make bench`` runs CUDA machines with ``--launch-method spawn`` (the
  config's forkserver elsewhere) and puts the GPU's name in the machine name
  (``python -m lossbench machine``).
* The measuring instruments (``sync``, the non-leaf copy, the peak-memory method, the exact
  reference, the depth experiment) are the tools' ``lossbench`` *of this checkout*
  (``tools/`` is put on ``sys.path``, which holds nothing else: asv drops ``PYTHONPATH``):
  asv measures other commits' ``softmaxloss`` with this suite, and the instrument must not
  change with the commit measured (nor be missing from an old one). From the commit under
  test only ``softmaxloss``'s public names are used: ``IMPLEMENTATIONS`` and
  ``UnsupportedDtypeError``.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import timeit
from pathlib import Path

import torch

TOOLS = str(Path(__file__).resolve().parents[1] / "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

from lossbench import harness  # noqa: E402  (this checkout's instruments)

sync = harness.sync
fresh_logits = harness.leaf_and_logits

IMPLS = [
    "naive_manual",
    "naive_autograd",
    "manual",
    "autograd",
    "fused",
    "fused_inplace",
    "torch",
    # Optional: measured when the commit registers them, skipped otherwise.
    "compiled",
    "compiled_manual",
    "triton",
    "triton_inplace",
]

# rows x classes. Gate grid: a small case, the seed's 3200x3200, an ImageNet-classifier shape.
SIZES = ["128x100", "3200x3200", "1024x1000"]
# Vocabulary-sized (language-model head): in the Slow* classes, excluded from `make gate`.
SIZES_VOCAB = ["512x32000"]
DTYPES = ["float32", "bfloat16"]
# The Slow* classes: float64, and the main grid's dtypes at the vocabulary size.
DTYPES_SLOW = ["float32", "float64", "bfloat16"]
DEVICES = ["cpu", "cuda"]

PARAM_NAMES = ["impl", "size", "dtype", "device"]

SEED = 1234


def parse_size(size: str) -> tuple[int, int]:
    rows, classes = size.split("x")
    return int(rows), int(classes)


def require_device(device: str) -> None:
    if device == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("cuda: torch.cuda.is_available() is False")
    if device not in ("cpu", "cuda"):
        raise NotImplementedError(f"unknown device {device!r}")


def unsupported_error():
    """The error that means 'this dtype is not supported' (a skip); any other is a failure.

    Commits older than ``softmaxloss.UnsupportedDtypeError`` raised a plain ``TypeError``.
    """
    import softmaxloss

    return getattr(softmaxloss, "UnsupportedDtypeError", TypeError)


def get_impl(name: str):
    """The registered callable, or NotImplementedError if this commit does not register it."""
    import softmaxloss

    registry = getattr(softmaxloss, "IMPLEMENTATIONS", {})
    if name not in registry:
        raise NotImplementedError(f"{name!r} is not in softmaxloss.IMPLEMENTATIONS here")
    return registry[name]


def fix_threads() -> None:
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def require_cores(threads: int) -> None:
    """A fixed thread count where the machine has the cores for it, else a skip (never a
    run on fewer threads)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (cores or 1) < threads:
        raise NotImplementedError(f"{threads} threads need {threads} cores, {cores} here")


@functools.lru_cache(maxsize=4)
def make_inputs(size: str, dtype: str, device: str, scale: str = "normal"):
    """Seeded ``(logits, target)``; cached per process so that ``setup`` stays cheap.

    ``scale``: ``"normal"`` standard normal; ``"large"`` each row scaled by a magnitude
    log-uniform in [1e2, 1e4] (where the naive formula overflows).
    """
    rows, classes = parse_size(size)
    gen = torch.Generator().manual_seed(SEED)
    x = torch.randn(rows, classes, generator=gen, dtype=torch.float32)
    if scale == "large":
        exponent = torch.rand(rows, 1, generator=gen, dtype=torch.float64) * 2 + 2
        x = (x.double() * 10.0**exponent).float()
    target = torch.randint(0, classes, (rows,), generator=gen)
    return x.to(device=device, dtype=getattr(torch, dtype)), target.to(device)


def keep_compile_cache_in_env() -> None:
    """Points torch.compile's caches (inductor's, Triton's) into the environment asv runs in
    (``ASV_ENV_DIR``, which asv sets for its benchmark processes: the environment's
    ``sys.prefix``), unless already set: compiled kernels are then reused across benchmark
    processes and runs of that environment, and removed with it. Outside an asv environment
    (tests, ``-E existing``) nothing is changed."""
    env_dir = os.environ.get("ASV_ENV_DIR")
    if not env_dir:
        return
    cache = os.path.join(env_dir, "var", "softmaxloss-compile-cache")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(cache, "inductor"))
    os.environ.setdefault("TRITON_CACHE_DIR", os.path.join(cache, "triton"))


_WARM: set = set()


def prepare(impl: str, size: str, dtype: str, device: str, scale: str = "normal"):
    """Common setup: device check, thread count, registry lookup, warm-up, inputs.

    Returns ``(fn, logits, target)``. Once per process and case, one forward+backward on the
    full-size inputs warms the implementation up, so no timed sample pays for one-time work
    (``torch.compile``'s compilation of the shape, lazy kernel loading, allocator pools); an
    unsupported dtype (``UnsupportedDtypeError``) there becomes a skip, other errors
    propagate (a broken implementation fails its own benchmarks).
    """
    require_device(device)
    fix_threads()
    keep_compile_cache_in_env()
    fn = get_impl(impl)
    logits, target = make_inputs(size, dtype, device, scale)
    key = (impl, size, dtype, device, scale)
    if key not in _WARM:
        try:
            fn(fresh_logits(logits)[1], target).backward()
        except unsupported_error() as exc:
            raise NotImplementedError(f"{impl} does not support {dtype}: {exc}") from exc
        sync(device)
        _WARM.add(key)
    return fn, logits, target


class Benchmark:
    """Base class: the shared parameter grid of speed benchmarks (gate-sized)."""

    params = [IMPLS, SIZES, DTYPES, DEVICES]
    param_names = PARAM_NAMES
    # 4 rounds of 5 samples, for asv's own runs (make bench-full, history; make bench passes
    # fewer): on this loaded 2-core machine the minimum's same-code ratio stayed within 1.33x
    # over 4 rounds but reached 6x over 2 rounds of 5 (a burst of load covers a whole
    # round). The gate does not use them: it times BASE and HEAD side by side in its paired
    # workers (tools/lossbench/paired.py, docs/gate.md).
    repeat = 5
    rounds = 4
    warmup_time = 0.02
    timeout = 120


class CPUTimeBenchmark(Benchmark):
    """Timings on the CPU, by the process's CPU time (``time.process_time``).

    On a shared machine the wall clock also counts the time the process sat descheduled;
    the CPU time of a one-thread process does not. The grid has ``device = "cpu"`` only.
    """

    params = [IMPLS, SIZES, DTYPES, ["cpu"]]
    timer = staticmethod(time.process_time)


class CUDATimeBenchmark(Benchmark):
    """Timings on a GPU: the wall clock (asv's default timer), every timed call synchronised.

    CPU time would leave out the time the host waits in ``torch.cuda.synchronize``.
    """

    params = [IMPLS, SIZES, DTYPES, ["cuda"]]
    timer = staticmethod(timeit.default_timer)
