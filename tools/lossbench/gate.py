"""The regression gate's decision: BASE vs HEAD results, one threshold per metric family.

Families (by asv type and unit; every benchmark of the suite is smaller-is-better):

* ``instructions``: ``track_`` values with unit ``instructions`` (callgrind counts);
* ``time``: asv ``time_`` benchmarks;
* ``memory``: ``peakmem_`` and ``track_`` values in ``bytes``;
* ``precision``: ``track_`` values in ``eps``.

A combination regresses when HEAD / BASE exceeds its family's threshold. For ``time`` the
ratio is the smaller of the ratios of the minima and of the medians of the samples over
the interleaved rounds (:func:`time_ratio`). A
combination that failed on HEAD is a failure (exit 2); one skipped on either side, or whose
benchmark code changed between the two runs (asv's ``version``), is not compared.
"""

from __future__ import annotations

import math
import os
import re
import statistics
from dataclasses import dataclass, field

from lossbench import config, results, runner, tables
from lossbench.errors import EXIT_FAILURE, EXIT_OK, EXIT_REGRESSION, ToolError, UsageError
from lossbench.results import Result

FAMILIES = ("instructions", "time", "memory", "precision")
# Chosen from the detection-power study (docs/gate.md), measured here:
# instructions: same-code ratios <= 1.0135 (630 comparisons); a 1.05x injection reads 1.05.
# time: same-code <= 1.24 for BASE -> no-op (330), one of 1980 pairs over 1.35.
# memory: same-code <= 1.008 (420); one extra logits buffer: 2x in extra bytes.
# precision: same-code exactly 1.0 (1620); 2 eps more gradient error reads 2.25x.
DEFAULT_THRESHOLDS = {
    "instructions": 1.03,
    "time": 1.35,
    "memory": 1.05,
    "precision": 1.5,
    "other": 2.0,
}
COUNT_UNITS = ("instructions",)
# Timings below this many seconds are too short for the timer to resolve a difference.
MIN_TIME = 2e-6


def family(result: Result) -> str:
    if result.unit == "instructions":
        return "instructions"
    if result.kind == "time":
        return "time"
    if result.kind in ("peakmem", "mem") or result.unit == "bytes":
        return "memory"
    if result.unit == "eps":
        return "precision"
    return "other"


def time_ratio(before: Result, after: Result) -> tuple[float, float, float]:
    """``(ratio, before, after)`` for a timing: both the minimum and the median must agree.

    With the samples of both commits recorded (4 interleaved rounds of 5), two estimates of
    HEAD / BASE: the ratio of the minima and the ratio of the medians; the gate takes the
    smaller. Noise on a shared machine comes in two kinds: load bursts that slow a whole
    round (they move the median, not the minimum) and bimodal timings, e.g. an allocation
    that page-faults in some samples and not in others (they move the minimum when one
    commit happens never to hit the fast mode, not the median). A real slowdown moves
    both. Measured here (docs/gate.md) over 990 same-code comparisons: largest ratio 2.2
    with the minimum alone, 2.9 with the median alone, 1.41 with both. ``before`` and
    ``after`` are the values of the estimate taken. Without samples: asv's medians.
    """
    if not (before.samples and after.samples):
        return after.value / before.value, before.value, after.value
    lo_b, lo_a = min(before.samples), min(after.samples)
    mid_b, mid_a = statistics.median(before.samples), statistics.median(after.samples)
    if lo_a / lo_b <= mid_a / mid_b:
        return lo_a / lo_b, lo_b, lo_a
    return mid_a / mid_b, mid_b, mid_a


@dataclass(frozen=True)
class Row:
    benchmark: str
    params: tuple[str, ...]
    family: str
    unit: str
    before: float
    after: float
    ratio: float
    threshold: float

    @property
    def regressed(self) -> bool:
        return self.ratio > self.threshold


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    failures: list[Result] = field(default_factory=list)
    base_failures: list[Result] = field(default_factory=list)
    not_compared: int = 0

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regressed]

    @property
    def exit_code(self) -> int:
        if self.failures:
            return EXIT_FAILURE
        return EXIT_REGRESSION if self.regressions else EXIT_OK

    def counts(self) -> dict[str, tuple[int, int]]:
        """``{family: (compared, regressed)}``."""
        out: dict[str, list[int]] = {}
        for row in self.rows:
            c = out.setdefault(row.family, [0, 0])
            c[0] += 1
            c[1] += row.regressed
        return {k: (v[0], v[1]) for k, v in out.items()}


def selected(result: Result, pattern: str | None) -> bool:
    """asv's ``-b`` rule: ``re.search`` in ``name(p1, p2)`` (in the name if unparametrised)."""
    return not pattern or re.search(pattern, result.label) is not None


def compare(
    before: dict,
    after: dict,
    thresholds: dict | None = None,
    pattern: str | None = None,
) -> Report:
    """Applies the per-family thresholds to every combination HEAD measured."""
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    report = Report()
    for key in sorted(after):
        new = after[key]
        if not selected(new, pattern):
            continue
        old = before.get(key)
        if old is not None and old.failed and not new.failed:
            report.base_failures.append(old)
        if new.failed:
            report.failures.append(new)
            continue
        if new.skipped or old is None or old.failed or old.skipped:
            continue
        if old.version is not None and new.version is not None and old.version != new.version:
            report.not_compared += 1
            continue
        fam = family(new)
        a, b = old.value, new.value
        if fam == "time":
            if max(a, b) < MIN_TIME:
                continue
            ratio, a, b = time_ratio(old, new)  # a, b: what the ratio compares
        elif old.value > 0:
            ratio = new.value / old.value
        else:
            ratio = 1.0 if new.value == old.value else math.inf
        report.rows.append(
            Row(
                benchmark=new.benchmark,
                params=new.params,
                family=fam,
                unit=new.unit,
                before=a,
                after=b,
                ratio=ratio,
                threshold=limits.get(fam, limits["other"]),
            )
        )
    return report


def format_value(value: float, unit: str) -> str:
    """asv's own formatting; counts (instructions, cycles, misses) with the SI prefixes of
    asv's byte format."""
    from asv.util import human_value

    return human_value(value, "bytes" if unit in COUNT_UNITS else unit)


COLUMNS = ("benchmark", "parameters", "metric", "before", "after", "ratio")


def format_rows(rows, markdown: bool = False) -> str:
    body = [
        (
            r.benchmark,
            ", ".join(p.strip("'") for p in r.params),
            r.family,
            format_value(r.before, r.unit),
            format_value(r.after, r.unit),
            f"{r.ratio:.3f} (> {r.threshold:g})",
        )
        for r in rows
    ]
    return tables.render(COLUMNS, body, markdown=markdown, right=(3, 4, 5))


# ---- running the gate ------------------------------------------------------------------


def progress_echo(echo):
    """An ``on_line`` for :func:`runner.run_asv` that echoes asv's progress lines."""
    from lossbench.asv_output import is_progress

    if echo is None:
        return None
    return lambda line: echo(line) if is_progress(line) else None


# Every benchmark of the instruction, time, memory and precision modules except the Slow*
# classes (vocabulary-sized and float64 timings), time_forward_backward (timed as its two
# halves; counted whole by the instruction counts) and the torch.compile entries (each asv
# process traces them again even with a warm compile cache: with them `make gate` took
# 1712 s here instead of 538 s (497 s without them, docs/gate.md); they stay in `make
# bench` and the site): the gate's time budget.
# asv matches -b against `name(p1, p2, ...)` for a parametrised benchmark, one combination
# at a time, so a lookahead on the first parameter drops the compiled combinations only.
GATE_BENCH = (
    r"^bench_(instructions|time|memory|precision)\.(?!Slow)(?!\w+\.time_forward_backward)"
    r"(?!.*\('compiled)"
)
TIMED = r"[^(]*\.time_"  # a time_ benchmark (the name, before its parameters)


def split_selection(pattern: str) -> tuple[str, str]:
    """``(measured once, timed)``: an asv ``-b`` regex split into two.

    Timings (``time_`` benchmarks) need both commits measured afresh, in interleaved rounds.
    Everything else (instruction counts, memory, precision) is a property of the commit and
    the environment, measured once per commit.
    """
    return (
        rf"^(?!{TIMED}).*?(?:{pattern})",
        rf"^(?={TIMED}).*?(?:{pattern})",
    )


@dataclass
class GateRun:
    base: str
    head: str
    report: Report
    seconds: float
    asv_exit: tuple[int, int]


def run(
    repo: str,
    base_rev: str,
    head_rev: str = "HEAD",
    conf_file: str = "asv.conf.json",
    machine: str = "",
    pattern: str = GATE_BENCH,
    thresholds: dict | None = None,
    launch_method: str | None = None,
    log_path: str | None = None,
    echo=None,
) -> GateRun:
    """Runs asv on BASE and HEAD and applies :func:`compare`.

    Two asv invocations over both commits. First the deterministic families (instruction
    counts, memory, precision): a commit whose results are already there (same benchmark
    code, same environment, e.g. BASE from an earlier gate run) is not measured again
    (``--skip-existing-successful``). Then the timings, always afresh: BASE and HEAD in
    interleaved rounds, samples recorded.
    """
    import time as _time

    start = _time.monotonic()
    base = runner.resolve(repo, base_rev, "BASE")
    head = runner.resolve(repo, head_rev, "HEAD")
    log_path = log_path or os.path.join(repo, ".asv", "gate.log")
    if base == head:
        raise UsageError(f"BASE {base_rev!r} is HEAD {head_rev!r}: nothing to compare")
    if echo is not None:
        echo(f"gate: BASE {base[:8]}, HEAD {head[:8]}; asv output in {log_path}")
    conf = os.path.join(repo, conf_file)
    results_dir = config.results_dir(conf)
    runner.ensure_machine(machine, log_path=log_path)
    hashfile = runner.write_hashfile(
        os.path.join(os.path.dirname(log_path), "gate-commits.txt"), [base, head]
    )
    common = ["--config", conf, "--machine", machine, "--show-stderr"]
    if launch_method:
        common += ["--launch-method", launch_method]
    once, timed = split_selection(pattern)
    on_line = progress_echo(echo)
    exits = tuple(
        runner.run_asv(
            ["run", *common, *args, f"HASHFILE:{hashfile}"],
            repo=repo,
            log_path=log_path,
            on_line=on_line,
        )
        for args in (
            ["--skip-existing-successful", "-b", once],
            ["--record-samples", "--interleave-rounds", "-b", timed],
        )
    )
    if any(rc not in (0, 2) for rc in exits):
        raise ToolError(f"asv run exited {max(exits)}; see {log_path}")
    try:
        before = results.load_commit(results_dir, machine, base)
        after = results.load_commit(results_dir, machine, head)
    except ToolError as exc:
        raise ToolError(f"{exc}; see {log_path}") from None
    report = compare(before, after, thresholds, pattern)
    return GateRun(base, head, report, _time.monotonic() - start, exits)


def summary_lines(report: Report, thresholds: dict | None = None) -> list[str]:
    limits = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    counts = report.counts()
    lines = []
    for fam in (*FAMILIES, "other"):
        if fam in counts:
            n, bad = counts[fam]
            lines.append(f"{fam}: {n} compared, {bad} regressed (threshold {limits[fam]:g}x)")
    if report.not_compared:
        lines.append(f"{report.not_compared} not compared (benchmark code changed)")
    return lines
