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
