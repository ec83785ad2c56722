"""Compilation time of the ``torch.compile`` entries (``compiled``, ``compiled_manual``).

The speed benchmarks warm these entries up in ``setup`` and so exclude compilation; this
module is where it is measured. Each sample runs in a fresh interpreter (compiled code and
in-memory caches live per process) whose inductor/Triton cache directory is

* ``cold``: a new empty directory, what a first run on a machine pays;
* ``warm``: a directory filled by one earlier process, what every later run pays.

The number is the first forward+backward's wall time minus the second's (the same call, now
compiled), in seconds, on 1024x1000 float32 logits. ``track_`` values are compared by ratio
in ``asv continuous``; this module is outside the gate's selection.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

from benchmarks.common import DEVICES, get_impl, require_device

COMPILED = ["compiled", "compiled_manual"]

_CHILD = r"""
import json, sys, time
import torch
import softmaxloss
torch.set_num_threads(1)
impl, device = sys.argv[1], sys.argv[2]
fn = softmaxloss.IMPLEMENTATIONS[impl]
gen = torch.Generator().manual_seed(1234)
x = torch.randn(1024, 1000, generator=gen).to(device)
t = torch.randint(0, 1000, (1024,), generator=gen).to(device)
def call():
    logits = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    fn(logits, t).backward()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0
first = call()
second = call()
print(json.dumps({"first": first, "second": second}))
"""


def _compile_seconds(impl: str, device: str, cache_dir: str) -> float:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache_dir, TRITON_CACHE_DIR=cache_dir)
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, impl, device],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    if res.returncode:
        raise RuntimeError(f"compiling {impl} failed:\n{res.stderr[-4000:]}")
    times = json.loads(res.stdout.strip().splitlines()[-1])
    return times["first"] - times["second"]


class TrackCompile:
    """Seconds to compile one forward+backward of an entry, cold and warm cache."""

    params = [COMPILED, ["cold", "warm"], DEVICES]
    param_names = ["impl", "cache", "device"]
    unit = "seconds"
    rounds = 1
    repeat = 1
    timeout = 1200

    def setup(self, impl, cache, device):
        require_device(device)
        get_impl(impl)  # NotImplementedError where this commit does not register it
        self.cache_dir = tempfile.mkdtemp(prefix="softmaxloss-compile-")
        if cache == "warm":
            _compile_seconds(impl, device, self.cache_dir)  # fills the cache

    def teardown(self, impl, cache, device):
        # asv runs teardown after a skipping setup too, before any cache_dir exists
        if getattr(self, "cache_dir", None):
            shutil.rmtree(self.cache_dir, ignore_errors=True)

    def track_compile_seconds(self, impl, cache, device):
        return _compile_seconds(impl, device, self.cache_dir)
