"""``python -m lossbench asv-quiet``: asv's output without the per-skip stanzas."""

from __future__ import annotations

import sys

from lossbench.asv_output import OutputFilter, skip_reason
from lossbench.commands import main

# Shaped as asv 0.6.6 prints `asv run --show-stderr` (two benchmarks; the second has a
# failing combination whose traceback holds blank lines, twice, and a stderr warning).
ASV_OUTPUT = """\
· Discovering benchmarks
· Running 2 total benchmarks (1 commits * 1 environments * 2 benchmarks)
[ 0.00%] ·· Benchmarking existing-py_root_bin_python3
[25.00%] ··· bench_memory.MemSoftmaxLoss.track_extra_bytes                   ok
[25.00%] ··· ======== =========== ======= ======
             --                     device
             ------------------------------------
               impl       size       cpu    cuda
             ======== =========== ======= ======
              manual   3200x3200    41M    n/a
             ======== =========== ======= ======

[25.00%] ···· For parameters: 'manual', '3200x3200', 'float32', 'cuda'
              asv: skipped: NotImplementedError('cuda: torch.cuda.is_available() is False')

              For parameters: 'compiled', '3200x3200', 'float32', 'cpu'
              asv: skipped: NotImplementedError("'compiled' is not in softmaxloss.IMPLEMENTATIONS here")

              For parameters: 'naive_manual', '128x100', 'bfloat16', 'cpu'
              asv: skipped: NotImplementedError('naive_manual does not support bfloat16: ...')

              For parameters: 'triton', '3200x3200', 'float32', 'cuda'
              asv: skipped: NotImplementedError('cuda: torch.cuda.is_available() is False')
[50.00%] ··· bench_time.TimeSoftmaxLoss.time_forward                       1/4 failed
[50.00%] ··· ======== ==========
               impl
             ======== ==========
              manual    1.00ms
              fused     failed
             ======== ==========

[50.00%] ···· For parameters: 'manual', '128x100', 'float32', 'cpu'
              UserWarning: something worth reading

              For parameters: 'fused', '128x100', 'float32', 'cpu'
              Traceback (most recent call last):
                File "x.py", line 1, in <module>
              ValueError: boom

              During handling of the above exception, another exception occurred:

              RuntimeError: bang
              asv: benchmark failed (exit status 1)

              For parameters: 'fused', '3200x3200', 'float32', 'cpu'
              Traceback (most recent call last):
                File "x.py", line 1, in <module>
              ValueError: boom

              During handling of the above exception, another exception occurred:

              RuntimeError: bang
              asv: benchmark failed (exit status 1)

              For parameters: 'fused', '3200x3200', 'float32', 'cuda'
              asv: skipped: NotImplementedError('cuda: torch.cuda.is_available() is False')
"""  # noqa: E501


def _filter(text, tables=False):
    filt = OutputFilter(tables=tables)
    out = [o for line in text.splitlines(keepends=True) for o in filt.feed(line)]
    return out + filt.finish(), filt


def test_skip_stanzas_become_one_counted_line():
    out, filt = _filter(ASV_OUTPUT)
    text = "\n".join(out)
    assert "asv: skipped" not in text and "'manual', '3200x3200', 'float32', 'cuda'" not in text
    assert dict(filt.skips) == {"no CUDA device": 3, "not registered": 1, "unsupported dtype": 1}
    assert filt.skip_summary() == (
        "5 parameter combinations skipped: 3 no CUDA device, 1 not registered, 1 unsupported dtype"
    )


def test_progress_failures_and_stderr_are_kept_tables_dropped():
    out, filt = _filter(ASV_OUTPUT)
    text = "\n".join(out)
    for kept in (
        "· Discovering benchmarks",
        "[25.00%] ··· bench_memory.MemSoftmaxLoss.track_extra_bytes                   ok",
        "[50.00%] ··· bench_time.TimeSoftmaxLoss.time_forward                       1/4 failed",
        "UserWarning: something worth reading",
        "RuntimeError: bang",
        "During handling of the above exception, another exception occurred:",
    ):
        assert kept in text, kept
    assert "41M" not in text and "1.00ms" not in text  # result tables: in the site
    # the first failure in full (blank lines inside included), the repeat as a reference
    assert text.count("ValueError: boom") == 1
    assert "'fused', '3200x3200', 'float32', 'cpu'" in text
    assert "(same output as above)" in text
    assert filt.failures == 2


def test_tables_are_kept_on_request():
    out, _ = _filter(ASV_OUTPUT, tables=True)
    text = "\n".join(out)
    assert "41M" in text and "1.00ms" in text and "asv: skipped" not in text


def test_unknown_skip_reasons_are_counted_by_their_message():
    assert skip_reason("NotImplementedError('no depth experiment at this commit')") == (
        "no depth experiment at this commit"
    )
    assert skip_reason("NotImplementedError('covered by TimeSoftmaxLoss')") == (
        "measured by another benchmark"
    )


def test_command_keeps_the_exit_status_and_filters(tmp_path, capsys):
    log = tmp_path / "asv.txt"
    log.write_text(ASV_OUTPUT)
    script = f"import sys; sys.stdout.write(open({str(log)!r}).read()); sys.exit(2)"
    rc = main(["asv-quiet", "--", sys.executable, "-c", script])
    out = capsys.readouterr().out
    assert rc == 2
    assert "asv: skipped" not in out and "RuntimeError: bang" in out
    last = out.splitlines()[-1]
    assert last.startswith("asv-quiet: 5 parameter combinations skipped: 3 no CUDA device")
    assert last.endswith("exit status 2")


def test_command_that_cannot_start_is_one_line(capsys):
    rc = main(["asv-quiet", "--", "/nonexistent/asv"])
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1 and "/nonexistent/asv" in err
