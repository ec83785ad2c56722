"""bench_instructions' skip rule: what valgrind cannot run is skipped, never failed.

The counts themselves are exercised by tests/test_gate_power.py (a real callgrind run).
"""

import pytest

from benchmarks import bench_instructions as bi


@pytest.mark.parametrize("impl", ["compiled", "compiled_manual", "triton", "triton_inplace"])
def test_compiled_and_triton_skip_with_the_reason(impl):
    cache = {"counts": {}, "errors": {}}
    with pytest.raises(NotImplementedError, match=f"{impl} is not counted: .*(valgrind|CUDA)"):
        bi.InstructionsSoftmaxLoss().setup(cache, impl, "128x100", "float32")


def test_eager_implementation_reads_its_counts():
    cache = {"counts": {f"manual|128x100|{r}": [5, 3] for r in bi.REGIONS}, "errors": {}}
    bench = bi.InstructionsSoftmaxLoss()
    bench.setup(cache, "manual", "128x100", "float32")
    assert bench.track_backward(cache, "manual", "128x100", "float32") == 3


def test_the_worker_is_never_asked_for_what_it_cannot_run(monkeypatch):
    monkeypatch.setenv(bi.IMPLS_ENV, "manual, compiled,triton")
    assert bi._selected_impls() == ["manual"]
    monkeypatch.delenv(bi.IMPLS_ENV)
    chosen = bi._selected_impls()
    assert "manual" in chosen and not set(chosen) & set(bi.NOT_COUNTED)
