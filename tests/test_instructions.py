"""bench_instructions' skip rule: what valgrind cannot run is skipped, never failed; a
missing valgrind fails every benchmark (a skip would be stored as NaN and never measured
again).

The counts themselves are exercised by tests/test_gate_power.py (a real callgrind run).
"""

import pytest

from benchmarks import bench_instructions as bi


@pytest.mark.parametrize("impl", ["compiled", "compiled_manual", "triton", "triton_inplace"])
def test_compiled_and_triton_skip_with_the_reason(impl):
    cache = {"counts": {}, "errors": {}}
    with pytest.raises(NotImplementedError, match=f"{impl} is not counted: .*(valgrind|CUDA)"):
        bi.InstructionsSoftmaxLoss().setup(cache, impl, "128x100", "float32")


def test_a_missing_tool_fails_every_benchmark_instead_of_skipping(monkeypatch):
    monkeypatch.setattr(bi.shutil, "which", lambda name: None)
    cache = bi._Counted().setup_cache()
    assert cache == {"missing": "valgrind is not installed (no valgrind on PATH)"}
    for cls in (bi.InstructionsSoftmaxLoss, bi.CacheSoftmaxLoss):
        with pytest.raises(bi.ToolMissing, match="valgrind is not installed.*install it"):
            cls().setup(cache, "manual", "1024x1000", "float32")
        assert not issubclass(bi.ToolMissing, NotImplementedError)  # asv's skip


def _metrics(ir, ll):
    return {"instructions": ir, "ll_misses": ll, "cycles": 10 * ir + ll}


def test_eager_implementation_reads_the_minimum_of_its_counts():
    reps = [_metrics(5, 40), _metrics(3, 50)]
    counts = {f"manual|{size}|{r}": reps for r in bi.REGIONS for size in bi.SIZES_INSTRUCTIONS}
    cache = {"counts": counts, "errors": {}}
    bench = bi.InstructionsSoftmaxLoss()
    bench.setup(cache, "manual", "1024x1000", "float32")
    assert bench.track_backward(cache, "manual", "1024x1000", "float32") == 3
    simulated = bi.CacheSoftmaxLoss()
    simulated.setup(cache, "manual", "1024x1000", "float32")
    assert simulated.track_cycles_forward(cache, "manual", "1024x1000", "float32") == 80
    assert simulated.track_ll_misses_forward_backward(cache, "manual", "1024x1000", "float32") == 40


def test_both_classes_share_one_worker():
    """asv keys setup_cache on the function's module and first line: one key, one worker."""
    from asv_runner.benchmarks._base import get_setup_cache_key

    keys = {
        get_setup_cache_key(c.setup_cache)
        for c in (bi.InstructionsSoftmaxLoss, bi.CacheSoftmaxLoss)
    }
    assert len(keys) == 1


def test_metrics_from_callgrind_events():
    """cycles = L1 hits + 5 LL hits + 35 memory accesses, from the events' definitions."""
    ev = {"Ir": 1000, "Dr": 300, "Dw": 100, "I1mr": 10, "D1mr": 40, "D1mw": 10,
          "ILmr": 2, "DLmr": 20, "DLmw": 3}  # fmt: skip
    accesses, l1, ll = 1400, 60, 25
    expected = (accesses - l1) + 5 * (l1 - ll) + 35 * ll
    assert bi.metrics(ev) == {"instructions": 1000, "ll_misses": 25, "cycles": expected}


def test_events_read_from_a_dump(tmp_path):
    dump = tmp_path / "cg.1.1"
    dump.write_text("events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw\nfl=x\n0 1\ntotals: 7 2 1 1\n")
    assert bi._events(str(dump)) == {"Ir": 7, "Dr": 2, "Dw": 1, "I1mr": 1, "D1mr": 0,
                                     "D1mw": 0, "ILmr": 0, "DLmr": 0, "DLmw": 0}  # fmt: skip


def test_the_worker_is_never_asked_for_what_it_cannot_run(monkeypatch):
    monkeypatch.setenv(bi.IMPLS_ENV, "manual, compiled,triton")
    assert bi._selected_impls() == ["manual"]
    monkeypatch.delenv(bi.IMPLS_ENV)
    chosen = bi._selected_impls()
    assert "manual" in chosen and not set(chosen) & set(bi.NOT_COUNTED)
