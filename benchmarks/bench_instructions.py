"""Instruction counts, estimated cycles and last-level misses (callgrind) on the CPU.

Why: on a shared machine wall-clock timings of the same code differ by tens of percent;
the number of instructions a region executes is nearly deterministic, so an extra pass over
5% of the logits shows up as a ~5% larger count every time. What costs time with few
instructions, memory traffic (a second trip through the logits, a lost fusion), shows in
callgrind's cache simulation, just as deterministic: a fixed geometry (``CACHE_SIM``:
I1 and D1 32 KiB 8-way, last level 1 MiB 16-way, 64-byte lines), whatever the host's, and
an estimated-cycles figure (:func:`metrics`: L1 hits 1, last-level hits 5, memory 35, the
weights iai-callgrind uses). The last level is 1 MiB on purpose: the 4 MB of logits at
1024x1000 never fit, so a change in traffic is a change in misses. Measured here
(docs/gate.md): an extra sweep reading one value per cache line of the logits moves the
instructions of manual's forward 1.021x and its cycles 1.19x; the simulation costs 5-14%
of the worker's time. Its blind spots: no hardware prefetcher and no TLB (a strided row
order reads 1.00x in every count and 1.07-1.13x natively), and no other thread (see
bench_threads).

How: ``setup_cache`` starts ONE process per environment under ``valgrind --tool=callgrind
--collect-atstart=no`` running this environment's interpreter (``sys.executable``). That
process (``worker_main``) imports the environment's ``softmaxloss`` and, for every
registered implementation and size, runs each region

* ``forward``: ``fn(x, target)``, the graph built and freed inside (as ``time_forward``);
* ``backward``: ``loss.backward()`` on a fresh graph built outside the region;
* ``forward_backward``: ``fn(x, target).backward()``;

with collection switched on around the region only (``torch._C._valgrind_toggle``) and a
stats dump at its end (``torch._C._valgrind_toggle_and_dump_stats``): one callgrind file
per region, whose totals give the counts (``Ir``: instructions executed; the cache
events). Warm-up runs come first (``WARMUPS`` rounds at the small size: CPython 3.11
specialises bytecode after a few executions, so the first calls of the Python-heavy
implementations count ~2% more; one forward+backward at the other sizes: allocator
growth), then ``REPEATS[size]`` counted runs; the recorded count is their minimum. The
``track_`` benchmarks only look the numbers up.

Sizes: 128x100 and 1024x1000. The seed's 3200x3200 is left out on purpose: callgrind
runs ~100x slower than native, and at 3200x3200 the grid took ~15 min per environment
here against ~2 min for these two sizes, while the count is linear in the number of
elements above ~1e5 (it adds no detection power; the timings still cover 3200x3200).

Torch is imported uninstrumented (``--instr-atstart=no``; ~17 s instead of ~65 s here) and
instrumentation is switched on with ``callgrind_control`` once the inputs are ready; if
that fails the worker is re-run instrumented from the start (same counts, measured here).

* valgrind missing, or a torch built without callgrind support: every benchmark here
  **fails**, naming the reason (``ToolMissing``), never a skip: asv stores a skip as NaN,
  ``--skip-existing-successful`` would never measure it again, and a gate would pass on
  what it never counted. The tools (``python -m lossbench gate``, ``history``) refuse such a
  run before it starts, or leave the families out when asked (``--skip-family
  instructions,cycles``). An implementation that raises fails its own benchmarks only.
* Not counted (skipped, ``NotImplementedError`` with the reason): ``compiled`` and
  ``compiled_manual``, whose inductor-generated C++ is built for the host's vector ISA
  (``-march=native``: AVX-512 here), which valgrind cannot execute (the worker dies of
  SIGILL inside the kernel), and whose compilation alone takes minutes under valgrind;
  ``triton`` and ``triton_inplace``, which run on CUDA only. Their speed is in
  bench_time.
* ``SOFTMAXLOSS_INSTRUCTION_IMPLS`` (comma-separated names) restricts the implementations
  counted, for studies that change only one of them; the others are then skipped.
* What valgrind changes: it emulates no AVX-512, so torch dispatches to its AVX2 kernels
  (on a host with AVX-512 a change of the AVX-512 build alone is invisible here: the paired
  timings see it); it runs threads one at a time, and the region toggle counts the calling
  thread only (bench_threads times two threads).
* Estimated cycles and last-level misses are recorded at 1024x1000 only
  (``CacheSoftmaxLoss``, from the same worker): at 128x100 the misses are a few hundred and
  move 2-3x between runs, and the cycles of the Python-heavy naive pair moved up to 6.5%
  between no-op commits.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks.common import IMPLS

SIZES_INSTRUCTIONS = ["128x100", "1024x1000"]
SIZES_CACHE = ["1024x1000"]
REGIONS = ["forward", "backward", "forward_backward"]
# Counted runs per size (minimum taken): the small size is cheap and noisier (~1%).
REPEATS = {"128x100": 3, "1024x1000": 2}
WARMUPS = 5
IMPLS_ENV = "SOFTMAXLOSS_INSTRUCTION_IMPLS"
# Measured here: ~130 s for the whole grid per environment (fast start). 480 s leaves a
# margin for a loaded machine, and with asv's 60 s on top a hung worker still ends within
# 10 minutes.
COUNT_TIMEOUT = 480
_COMPILED = (
    "torch.compile's generated C++ targets this host's vector ISA (-march=native, AVX-512 "
    "here), which valgrind cannot execute"
)
NOT_COUNTED = {
    "compiled": _COMPILED,
    "compiled_manual": _COMPILED,
    "triton": "a CUDA-only kernel; instruction counts are CPU-only",
    "triton_inplace": "a CUDA-only kernel; instruction counts are CPU-only",
}
_EVENTS = re.compile(rb"^events:\s+(.+)$", re.MULTILINE)
_TOTALS = re.compile(rb"^(?:summary|totals):\s+(.+)$", re.MULTILINE)
# The simulated caches (callgrind --cache-sim=yes): fixed, whatever the host has, so the
# counts are the same on every machine. The last level is small on purpose: 1 MiB, below
# the 4 MB of logits at 1024x1000, so that a second trip through the logits misses it.
CACHE_SIM = ["--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"]
_DUMP = re.compile(r"cg\.\d+\.(\d+)")


def _region_runners(fn, logits, target):
    """The three regions as callables ``run(on, off_and_dump)``.

    As in bench_time: fresh non-leaf logits for every call (``fresh_logits``), made outside
    the region.
    """
    from benchmarks.common import fresh_logits

    def forward(on, off):
        x = fresh_logits(logits)[1]
        on()
        try:
            fn(x, target)  # the result is dropped inside the region, as in time_forward
        finally:
            off()

    def backward(on, off):
        loss = fn(fresh_logits(logits)[1], target)  # a fresh graph, built outside the region
        on()
        try:
            loss.backward()
        finally:
            off()

    def forward_backward(on, off):
        x = fresh_logits(logits)[1]
        on()
        try:
            fn(x, target).backward()
        finally:
            off()

    return {"forward": forward, "backward": backward, "forward_backward": forward_backward}


def _plan(impls, sizes, repeats):
    """``[(impl, size, region, rep or None for a warm-up, run)]`` in execution order."""
    import torch

    from benchmarks.common import get_impl, make_inputs

    torch.set_num_threads(1)
    plan = []
    for impl in impls:
        try:
            fn = get_impl(impl)
        except NotImplementedError:
            continue  # not registered by this commit: its benchmarks skip
        for size in sizes:
            logits, target = make_inputs(size, "float32", "cpu")
            runners = _region_runners(fn, logits, target)
            if size == sizes[0]:
                for _ in range(WARMUPS):
                    plan += [(impl, size, region, None, runners[region]) for region in REGIONS]
            else:  # the code is warm: one forward+backward grows the allocator's pools
                plan.append((impl, size, "forward_backward", None, runners["forward_backward"]))
            for rep in range(repeats[size]):
                plan += [(impl, size, region, rep, runners[region]) for region in REGIONS]
    return plan


def _instrumentation_on() -> None:
    """Asks callgrind (started with ``--instr-atstart=no``) to instrument from now on.

    ``callgrind_control`` reaches this process through valgrind's gdbserver, which polls
    while the process executes code: spinning here (rather than blocking in ``wait``)
    means no ptrace permission is needed.
    """
    proc = subprocess.Popen(
        ["callgrind_control", "--instr=on", str(os.getpid())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            break
    out = proc.communicate()[0]
    if proc.returncode != 0 or "OK" not in out:
        raise RuntimeError(f"callgrind_control --instr=on failed: {out.strip()[-500:]}")


def worker_main(manifest, impls, sizes, repeats, instrument) -> None:
    """Runs under callgrind: one dump per region; writes the regions, in order, to JSON.

    An implementation that raises is recorded with its error and not run further.
    """
    import gc

    import torch

    on = torch._C._valgrind_toggle
    off = torch._C._valgrind_toggle_and_dump_stats
    plan = _plan(impls, sizes, repeats)
    gc.collect()
    gc.freeze()  # what is imported so far is never traversed by the collector again
    if instrument:
        _instrumentation_on()
    order, failed = [], {}
    for impl, size, region, rep, run in plan:
        if impl in failed:
            continue
        entry = {"impl": impl, "size": size, "region": region, "rep": rep}
        gc.disable()  # a collection inside a region would land in one count at random
        start = time.perf_counter()
        try:
            run(on, off)
        except Exception as exc:  # the dump was still written (finally)
            failed[impl] = f"{type(exc).__name__}: {exc}"
            entry["error"] = failed[impl]
        entry["seconds"] = time.perf_counter() - start
        gc.enable()
        order.append(entry)
    with open(manifest, "w") as f:
        json.dump(order, f)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip the interpreter's teardown: slow under valgrind and never counted


def _events(path: str) -> dict[str, int]:
    """A dump's totals by event (Ir, Dr, Dw, I1mr, D1mr, D1mw, ILmr, DLmr, DLmw)."""
    with open(path, "rb") as f:
        text = f.read()
    names, totals = _EVENTS.findall(text), _TOTALS.findall(text)
    if not names or not totals:
        raise RuntimeError(f"no event totals in callgrind output {path}")
    events = names[-1].decode().split()
    values = [int(v) for v in totals[-1].split()]  # trailing zero events may be left out
    return dict(zip(events, values + [0] * (len(events) - len(values)), strict=True))


def metrics(ev: dict[str, int]) -> dict[str, int]:
    """Instructions, last-level misses and estimated cycles of one region's events.

    accesses = Ir + Dr + Dw; L1 misses = I1mr + D1mr + D1mw; LL misses = ILmr + DLmr + DLmw;
    cycles = (accesses - L1 misses) + 5 (L1 misses - LL misses) + 35 LL misses: L1 hits cost
    1, last-level hits 5, memory 35 (the estimate iai-callgrind uses).
    """
    accesses = ev["Ir"] + ev.get("Dr", 0) + ev.get("Dw", 0)
    l1 = ev.get("I1mr", 0) + ev.get("D1mr", 0) + ev.get("D1mw", 0)
    ll = ev.get("ILmr", 0) + ev.get("DLmr", 0) + ev.get("DLmw", 0)
    return {"instructions": ev["Ir"], "ll_misses": ll, "cycles": accesses + 4 * l1 + 30 * ll}


def _run_worker(tmp, manifest, impls, sizes, repeats, instrument, timeout):
    bench_dir = os.path.dirname(os.path.abspath(__file__))
    # Import this directory as the package `benchmarks` without putting its parent (the
    # repository, with a source copy of softmaxloss) on sys.path: the environment's
    # installed softmaxloss is the one measured, as under asv_runner itself.
    boot = (
        "import importlib.util, sys\n"
        f"d = {bench_dir!r}\n"
        "s = importlib.util.spec_from_file_location("
        "'benchmarks', d + '/__init__.py', submodule_search_locations=[d])\n"
        "m = importlib.util.module_from_spec(s)\n"
        "sys.modules['benchmarks'] = m\n"
        "s.loader.exec_module(m)\n"
        "from benchmarks.bench_instructions import worker_main\n"
        f"worker_main({manifest!r}, {impls!r}, {sizes!r}, {repeats!r}, {instrument!r})\n"
    )
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--instr-atstart={'no' if instrument else 'yes'}",
        "--collect-atstart=no",
        *CACHE_SIM,
        f"--callgrind-out-file={tmp}/cg.%p",
        sys.executable,
        "-c",
        boot,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp, stdin=subprocess.DEVNULL
    )


def _build_the_counted_extension() -> None:
    """Builds, natively, the C++ Functions the worker will load (where the measured commit
    has one): under valgrind, which emulates no AVX-512, ATen and with it
    ``softmaxloss._cpu_ext`` dispatch to AVX2, a build of its own. Built inside the worker it
    would cost the build's ~40 s of the count's time budget."""
    try:
        from softmaxloss import _cpu_ext
    except ImportError:  # an older commit: nothing to build
        return
    if _cpu_ext.unavailable_reason() is None:
        _cpu_ext.build("DEFAULT" if _cpu_ext.instruction_set() == "DEFAULT" else "AVX2")


def count_instructions(impls=None, sizes=None, repeats=None, timeout=COUNT_TIMEOUT):
    """Counts every region of ``impls`` x ``sizes`` in one callgrind process.

    Returns ``{"counts": {"impl|size|region": [metrics() per repeat]}, "errors": {impl: msg},
    "seconds": wall time, "fast_start": bool}``. Raises ``ToolMissing`` when valgrind is
    missing or this torch cannot talk to it.
    """
    import torch

    if shutil.which("valgrind") is None:
        raise ToolMissing("valgrind is not installed (no valgrind on PATH)")
    if not torch._C._valgrind_supported_platform():
        raise ToolMissing("this torch build has no callgrind support")
    impls = list(IMPLS if impls is None else impls)
    sizes = list(SIZES_INSTRUCTIONS if sizes is None else sizes)
    repeats = {size: (REPEATS.get(size, 2) if repeats is None else repeats) for size in sizes}
    start = time.monotonic()
    _build_the_counted_extension()
    with tempfile.TemporaryDirectory(prefix="callgrind-") as tmp:
        manifest = os.path.join(tmp, "regions.json")
        for fast_start in (True, False):
            for name in os.listdir(tmp):
                os.unlink(os.path.join(tmp, name))
            left = timeout - (time.monotonic() - start)
            proc = _run_worker(tmp, manifest, impls, sizes, repeats, fast_start, left)
            if proc.returncode == 0 and os.path.exists(manifest):
                break
        else:
            raise RuntimeError(f"callgrind worker exited {proc.returncode}:\n{proc.stderr[-4000:]}")
        with open(manifest) as f:
            order = json.load(f)
        dumps = sorted(
            (name for name in os.listdir(tmp) if _DUMP.fullmatch(name)),
            key=lambda name: int(_DUMP.fullmatch(name).group(1)),
        )
        if len(dumps) != len(order):
            raise RuntimeError(f"{len(dumps)} callgrind dumps for {len(order)} regions")
        counts, errors = {}, {}
        for entry, name in zip(order, dumps, strict=True):
            if "error" in entry:
                errors[entry["impl"]] = entry["error"]
            elif entry["rep"] is not None:
                key = f"{entry['impl']}|{entry['size']}|{entry['region']}"
                counts.setdefault(key, []).append(metrics(_events(os.path.join(tmp, name))))
    return {
        "counts": counts,
        "errors": errors,
        "seconds": time.monotonic() - start,
        "fast_start": fast_start,
    }


class ToolMissing(RuntimeError):
    """What counting needs is not here (valgrind, torch's callgrind hooks): the benchmarks
    fail with this message, they are not skipped."""


def _selected_impls() -> list[str]:
    names = [n.strip() for n in os.environ.get(IMPLS_ENV, "").split(",") if n.strip()]
    return [n for n in names or IMPLS if n not in NOT_COUNTED]


class _Counted:
    """The counts of one callgrind process per environment: ``setup_cache`` is defined here
    once, so asv keys its cache on this line and both classes below share one worker."""

    param_names = ["impl", "size", "dtype"]
    timeout = 60

    def setup_cache(self):
        try:
            return count_instructions(_selected_impls(), SIZES_INSTRUCTIONS)
        except ToolMissing as exc:
            return {"missing": str(exc)}

    setup_cache.timeout = COUNT_TIMEOUT + 60

    def setup(self, cache, impl, size, dtype):
        if impl in NOT_COUNTED:
            raise NotImplementedError(f"{impl} is not counted: {NOT_COUNTED[impl]}")
        if "missing" in cache:
            raise ToolMissing(f"{cache['missing']}: nothing here is counted; install it")
        if impl in cache["errors"]:
            raise RuntimeError(f"{impl} failed under callgrind: {cache['errors'][impl]}")
        self.counts = cache["counts"]
        if f"{impl}|{size}|forward" not in self.counts:
            raise NotImplementedError(f"{impl!r} not counted (not registered, or {IMPLS_ENV})")

    def _min(self, impl, size, region, metric):
        return min(m[metric] for m in self.counts[f"{impl}|{size}|{region}"])


class InstructionsSoftmaxLoss(_Counted):
    """Instructions executed per region (minimum over the repeats), CPU, one thread."""

    params = [IMPLS, SIZES_INSTRUCTIONS, ["float32"]]

    def track_forward(self, cache, impl, size, dtype):
        return self._min(impl, size, "forward", "instructions")

    def track_backward(self, cache, impl, size, dtype):
        return self._min(impl, size, "backward", "instructions")

    def track_forward_backward(self, cache, impl, size, dtype):
        return self._min(impl, size, "forward_backward", "instructions")

    track_forward.unit = "instructions"
    track_backward.unit = "instructions"
    track_forward_backward.unit = "instructions"


class CacheSoftmaxLoss(_Counted):
    """The simulated caches per region: estimated cycles and last-level misses, at 1024x1000
    only. At 128x100 the data fits the simulated caches; what moves there is the Python
    side's scattered state: same-code estimated cycles moved up to 6.5% (no-op commits, the
    naive pair) while their instructions moved 0.2%."""

    params = [IMPLS, SIZES_CACHE, ["float32"]]

    def track_cycles_forward(self, cache, impl, size, dtype):
        return self._min(impl, size, "forward", "cycles")

    def track_cycles_backward(self, cache, impl, size, dtype):
        return self._min(impl, size, "backward", "cycles")

    def track_cycles_forward_backward(self, cache, impl, size, dtype):
        return self._min(impl, size, "forward_backward", "cycles")

    def track_ll_misses_forward(self, cache, impl, size, dtype):
        return self._min(impl, size, "forward", "ll_misses")

    def track_ll_misses_backward(self, cache, impl, size, dtype):
        return self._min(impl, size, "backward", "ll_misses")

    def track_ll_misses_forward_backward(self, cache, impl, size, dtype):
        return self._min(impl, size, "forward_backward", "ll_misses")

    track_ll_misses_forward.unit = "misses"
    track_ll_misses_backward.unit = "misses"
    track_ll_misses_forward_backward.unit = "misses"
    track_cycles_forward.unit = "cycles"
    track_cycles_backward.unit = "cycles"
    track_cycles_forward_backward.unit = "cycles"
