"""benchmarks/common.py's compile-cache placement and warm-up (the rest of the suite's
helpers are covered by test_gate.py)."""

from __future__ import annotations

import os

from benchmarks import common


def test_compile_caches_go_into_the_asv_environment_only(monkeypatch, tmp_path):
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "ASV_ENV_DIR"):
        monkeypatch.delenv(var, raising=False)
    common.keep_compile_cache_in_env()  # not under asv: torch's defaults stay
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ
    monkeypatch.setenv("ASV_ENV_DIR", str(tmp_path))
    common.keep_compile_cache_in_env()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"].startswith(str(tmp_path))
    assert os.environ["TRITON_CACHE_DIR"].startswith(str(tmp_path))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/elsewhere")
    common.keep_compile_cache_in_env()  # a user's own setting wins
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/elsewhere"


def test_prepare_warms_up_once_per_case_with_a_full_size_forward_backward(monkeypatch):
    calls = []

    def counting(logits, target):
        calls.append(tuple(logits.shape))
        return logits.sum()

    monkeypatch.setattr(common, "_WARM", set())
    import softmaxloss

    monkeypatch.setitem(softmaxloss.IMPLEMENTATIONS, "counting", counting)
    for _ in range(3):  # asv re-runs setup before every sample
        fn, logits, target = common.prepare("counting", "128x100", "float32", "cpu")
    assert calls == [(128, 100)]
    assert fn is counting and logits.shape == (128, 100) and target.shape == (128,)
    common.prepare("counting", "1024x1000", "float32", "cpu")  # a new case: warmed up too
    assert calls == [(128, 100), (1024, 1000)]


def test_the_same_code_has_one_peak_memory_in_every_process():
    """bench_memory's peakmem in fresh processes, as asv runs it: bfloat16 at 512x32000,
    whose buffers sit just under glibc's adaptive mmap ceiling. Without a fixed threshold
    the torch entry's peak alternated between two values (446 and 477 MiB here), a 7%
    same-code difference above the gate's 5% memory threshold."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import resource, sys; sys.path[:0] = ['.', 'tools']\n"
        "from benchmarks import bench_memory as bm\n"
        "b = bm.MemSoftmaxLoss()\n"
        "case = ('torch', '512x32000', 'bfloat16', 'cpu')\n"
        "b.setup(*case)\n"
        "b.peakmem_forward_backward(*case)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env,
                         stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]  # fmt: skip
    peaks = [int(p.communicate(timeout=300)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert max(peaks) - min(peaks) <= 256, peaks  # KiB: one peak, to a few pages
