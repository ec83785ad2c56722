"""The regression gate: BASE vs HEAD, one threshold per metric family (docs/gate.md).

Families (every benchmark of the suite is smaller-is-better):

* ``instructions``: callgrind's instruction counts (``track_``, unit ``instructions``);
* ``cycles``: callgrind's cache simulation, estimated cycles and last-level misses (units
  ``cycles``, ``misses``): memory traffic that costs few instructions;
* ``memory``: ``peakmem_`` and ``track_`` values in ``bytes``;
* ``precision``: ``track_`` values in ``eps``;
* ``time``: the paired timings (``lossbench.paired``): BASE and HEAD in persistent workers,
  alternating, decided from the pairs.

The deterministic families are properties of a commit and its environment: measured once
per commit by ``asv run`` (a commit already measured with the same benchmark code is not
measured again), a combination regresses when HEAD / BASE exceeds its family's threshold.
Timings are measured afresh at every gate run. A combination that failed on HEAD is a
failure (exit 3); one skipped on either side, or whose benchmark code changed between the
two results (asv's ``version``), is not compared.
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lossbench import config, paired, results, runner, tables
from lossbench.errors import EXIT_FAILURE, EXIT_OK, EXIT_REGRESSION, ToolError, UsageError
from lossbench.results import Result

FAMILIES = ("instructions", "cycles", "memory", "precision", "time")
# Chosen from the detection-power study (docs/gate.md), measured here:
# instructions: same-code ratios <= 1.0135 (630 comparisons); a 1.05x injection reads 1.05.
# memory: same-code <= 1.008 (420); one extra logits buffer: 2x in extra bytes.
# precision: same-code exactly 1.0 (1620); 2 eps more gradient error reads 2.25x.
# cycles: callgrind's simulated caches, at 1024x1000; same-code within 1.7% (fused's small
# backward); a sweep over the logits' cache lines reads 1.19.
# time: the paired timings' threshold (lossbench.paired.Settings), with its sign test.
DEFAULT_THRESHOLDS = {
    "instructions": 1.03,
    "cycles": 1.05,
    "memory": 1.05,
    "precision": 1.5,
    "time": paired.Settings.threshold,
    "other": 2.0,
}
COUNT_UNITS = ("instructions", "cycles", "misses")


def limits_of(thresholds: dict | None) -> dict[str, float]:
    """Every family's threshold: ``thresholds`` where given, else the default."""
    return {**DEFAULT_THRESHOLDS, **(thresholds or {})}


def family(result: Result) -> str:
    if result.unit in ("instructions", "cycles"):
        return result.unit
    if result.unit == "misses":
        return "cycles"
    if result.kind == "time":
        return "time"
    if result.kind in ("peakmem", "mem") or result.unit == "bytes":
        return "memory"
    if result.unit == "eps":
        return "precision"
    return "other"


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
    regressed: bool
    note: str = ""  # the paired timings' p-value


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # labels of what failed on HEAD
    base_failures: list[str] = field(default_factory=list)
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


def selected(label: str, pattern: str | None) -> bool:
    """asv's ``-b`` rule: ``re.search`` in ``name(p1, p2)`` (in the name if unparametrised)."""
    return not pattern or re.search(pattern, label) is not None


def compare(
    before: dict,
    after: dict,
    thresholds: dict | None = None,
    pattern: str | None = None,
) -> Report:
    """Applies the per-family thresholds to every combination HEAD measured, timings aside
    (asv's ``time_`` results and the paired series: :func:`add_paired` decides those)."""
    limits = limits_of(thresholds)
    report = Report()
    for key in sorted(after):
        new = after[key]
        if not selected(new.label, pattern) or family(new) == "time":
            continue
        old = before.get(key)
        if old is not None and old.failed and not new.failed:
            report.base_failures.append(old.label)
        if new.failed:
            report.failures.append(new.label)
            continue
        if new.skipped or old is None or old.failed or old.skipped:
            continue
        if old.version is not None and new.version is not None and old.version != new.version:
            report.not_compared += 1
            continue
        fam = family(new)
        ratio = results.ratio(old.value, new.value)
        limit = limits.get(fam, limits["other"])
        report.rows.append(
            Row(
                benchmark=new.benchmark,
                params=new.params,
                family=fam,
                unit=new.unit,
                before=old.value,
                after=new.value,
                ratio=ratio,
                threshold=limit,
                regressed=ratio > limit,
            )
        )
    return report


def add_paired(report: Report, outcomes: list[paired.Outcome], settings: paired.Settings):
    """The paired timings' verdicts as ``time`` rows; what failed on HEAD as failures."""
    for out in outcomes:
        if out.skipped:
            continue
        if out.error:
            side = report.base_failures if out.error.startswith("BASE") else report.failures
            side.append(f"{out.case.label} ({out.error})")
            continue
        report.rows.append(
            Row(
                benchmark=out.case.bench,
                params=out.case.params,
                family="time",
                unit="seconds",
                before=statistics.median(out.base_times),
                after=statistics.median(out.head_times),
                ratio=out.ratio,
                threshold=settings.threshold,
                regressed=out.regressed,
                note="" if out.p_value is None else f"p={out.p_value:.2g}",
            )
        )


def format_value(value: float, unit: str) -> str:
    """asv's own formatting; counts (instructions, cycles) with the SI prefixes of asv's
    byte format."""
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
            f"{r.ratio:.3f} (> {r.threshold:g}{', ' + r.note if r.note else ''})",
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


# Every benchmark of the instruction, time, threads, memory and precision modules except the Slow*
# classes (vocabulary-sized and float64 timings), time_forward_backward (timed as its two
# halves; counted whole by the instruction counts) and the torch.compile entries (dynamo
# traces them again in every process: with them `make gate` took 1712 s here instead of
# 538 s, docs/gate.md); they stay in `make bench` and the site: the gate's time budget.
# asv matches -b against `name(p1, p2, ...)` for a parametrised benchmark, one combination
# at a time, so a lookahead on the first parameter drops the compiled combinations only.
GATE_BENCH = (
    r"^bench_(instructions|time|threads|memory|precision)\.(?!Slow)(?!\w+\.time_forward_backward)"
    r"(?!.*\('compiled)"
)
TIMED = r"[^(]*\.time_"  # a time_ benchmark (the name, before its parameters)


def split_selection(pattern: str) -> tuple[str, str]:
    """``(measured once, timed)``: an asv ``-b`` regex split into two.

    Timings (``time_`` benchmarks) need both commits measured afresh, side by side: the
    paired timings. Everything else (instruction counts, cycles, memory, precision) is a
    property of the commit and the environment, measured once per commit.
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
    asv_exit: int
    outcomes: list[paired.Outcome] = field(default_factory=list)
    busy_cores: float | None = None  # other work on the machine as the timings began
    same_package: bool = False  # HEAD's package is BASE's: nothing measured


# What a commit's own files give its measurements: the package its wheel (and its C++
# build) is made from. The benchmarks, the tools and asv's config are this checkout's for
# both commits of a gate, so a commit that changes none of these (documentation, tests,
# CI, the tools) measures what its BASE measures.
PACKAGE_PATHS = ("softmaxloss", "pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in")


def package_key(repo, commit: str) -> str:
    """A digest of ``commit``'s git objects under ``PACKAGE_PATHS``: two commits with the
    same key build the same package."""
    listing = runner.git(repo, "ls-tree", "-r", "--full-tree", commit, "--", *PACKAGE_PATHS)
    return hashlib.sha256(listing.encode()).hexdigest()


# More than this many cores busy with other work as the paired timings begin, and the gate
# says that its two-thread timings cannot see a loss of parallelism (they need both cores).
BUSY_CORES_NOTE = 0.5


def busy_cores(seconds: float = 1.0, stat: str = "/proc/stat") -> float | None:
    """Cores kept busy by other processes over ``seconds`` while this one waits: from the
    kernel's CPU counters (/proc/stat), or None where there are none."""

    def sample():
        with open(stat) as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + fields[4]  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)


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
    settings: paired.Settings | None = None,
    extra_env: dict | None = None,
    measure_same_package: bool = False,
) -> GateRun:
    """Runs asv on BASE and HEAD (the deterministic families, once per commit), then the
    paired timings, stores them in asv's results and applies the thresholds. ``extra_env``:
    more environment for asv's run (e.g. ``SOFTMAXLOSS_INSTRUCTION_IMPLS``).

    When HEAD's package is BASE's (:func:`package_key`) nothing is measured: whatever
    differs between the two is noise. BASE's deterministic results, where asv has them,
    are copied to HEAD (the site's history gets its point). ``measure_same_package``:
    measure and time them all the same (the detection-power study's no-ops)."""
    start = time.monotonic()
    base = runner.resolve(repo, base_rev, "BASE")
    head = runner.resolve(repo, head_rev, "HEAD")
    if base == head:
        raise UsageError(f"BASE {base_rev!r} is HEAD {head_rev!r}: nothing to compare")
    limits = limits_of(thresholds)
    settings = replace(settings or paired.Settings(), threshold=limits["time"])
    workdir = Path(repo) / ".asv" / "gate"
    log_path = log_path or str(workdir / "gate.log")
    say = echo or (lambda line: None)
    say(f"gate: BASE {base[:8]}, HEAD {head[:8]}; asv output in {log_path}")
    conf = os.path.join(repo, conf_file)
    results_dir = config.results_dir(conf)
    if not measure_same_package and package_key(repo, base) == package_key(repo, head):
        copied, why = 0, ""
        try:
            copied = results.copy_commit(conf, machine, base, head)  # 0 where BASE has none
        except ToolError as exc:  # e.g. no asv machine file in this HOME
            why = f" ({exc})"
        say(
            f"gate: HEAD's package is BASE's ({', '.join(PACKAGE_PATHS[:2])} unchanged): "
            f"nothing to measure or time; {copied} of BASE's deterministic results copied to "
            f"HEAD{why} (--measure-same-package measures anyway)"
        )
        return GateRun(base, head, Report(), time.monotonic() - start, 0, same_package=True)
    runner.ensure_machine(machine, log_path=log_path)
    hashfile = runner.write_hashfile(workdir / "commits.txt", [base, head])
    once, timed = split_selection(pattern)
    args = runner.asv_args("run", conf, machine, launch_method)
    args += ["--skip-existing-successful", "-b", once, f"HASHFILE:{hashfile}"]
    env = {**os.environ, **(extra_env or {})}
    rc = runner.run_asv(args, repo=repo, log_path=log_path, on_line=progress_echo(echo), env=env)
    if rc not in (0, 2):
        raise ToolError(f"asv run exited {rc}; see {log_path}")
    cases = paired.cases(results.load_benchmarks(results_dir), timed)
    busy = busy_cores()
    if busy is not None and busy > BUSY_CORES_NOTE:
        say(
            f"gate: note: {busy:.1f} of {os.cpu_count()} cores busy with other work: the "
            "paired timings hold up, but two-thread timings cannot see a loss of parallelism"
        )
    outcomes = paired.measure(
        repo,
        base,
        head,
        cases,
        python=paired.environment_python(conf),
        workdir=workdir,
        settings=settings,
        echo=echo,
    )
    for commit, side in ((base, "base"), (head, "head")):
        paired.store(conf, machine, commit, outcomes, side)
    try:
        before = results.load_commit(results_dir, machine, base)
        after = results.load_commit(results_dir, machine, head)
    except ToolError as exc:
        raise ToolError(f"{exc}; see {log_path}") from None
    report = compare(before, after, thresholds, once)
    add_paired(report, outcomes, settings)
    return GateRun(base, head, report, time.monotonic() - start, rc, outcomes, busy)


def summary_lines(
    report: Report, thresholds: dict | None = None, same_package: bool = False
) -> list[str]:
    limits = limits_of(thresholds)
    counts = report.counts()
    lines = ["HEAD's package is BASE's: nothing measured"] if same_package else []
    for fam in (*FAMILIES, "other"):
        if fam in counts:
            n, bad = counts[fam]
            how = " paired, sign test" if fam == "time" else ""
            lines.append(f"{fam}: {n} compared, {bad} regressed (threshold {limits[fam]:g}x{how})")
    if report.not_compared:
        lines.append(f"{report.not_compared} not compared (benchmark code changed)")
    if report.base_failures:
        shown = ", ".join(report.base_failures[:3]) + (
            ", ..." if len(report.base_failures) > 3 else ""
        )
        lines.append(f"{len(report.base_failures)} not compared: failed on BASE ({shown})")
    return lines
