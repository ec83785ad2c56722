"""The regression gate: BASE vs HEAD, one threshold per metric family (docs/gate.md; the
families: ``lossbench.families``). Timings are the paired timings (``lossbench.paired``):
BASE and HEAD in persistent workers, alternating, decided from the pairs.

The deterministic families are properties of a commit and its environment: measured once
per commit by ``asv run`` (a commit already measured with the same benchmark code is not
measured again), a combination regresses when HEAD / BASE exceeds its family's threshold.
Timings are measured afresh at every gate run.

**A fault is never a pass.** Exit 0 only when every selected family was measured on both
commits and compared. Exit 3 (:attr:`Report.exit_code`), each cause named in the summary:
a family selected but nothing of it compared; a combination that failed on HEAD, or that
BASE measured and HEAD did not; a timing whose worker died, hung or could not start
(:class:`lossbench.paired.WorkerFault`); results that could not be stored. Refused before
any measuring: a family whose tool is missing (valgrind for instructions and cycles; or
``--skip-family``, said in the summary), uncommitted changes to the package (or
``--allow-dirty``), a config with several environments, a second gate in the same checkout.
Not compared, and said: what failed on BASE, what HEAD measures and BASE never did, a
benchmark whose code changed between the two results (asv's ``version``).
"""

from __future__ import annotations

import hashlib
import os
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lossbench import config, load, paired, results, runner, tables
from lossbench.errors import EXIT_FAILURE, EXIT_OK, EXIT_REGRESSION, ToolError, UsageError
from lossbench.families import (
    FAMILIES,  # noqa: F401 (gate.FAMILIES: the commands' and the study's)
    check_tools,
    family,
    family_of_label,
    selected,
    selected_labels,
    tool_benchmarks,
    without_families,
)

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
    lost: list[str] = field(default_factory=list)  # measured on BASE, skipped on HEAD
    faults: list[str] = field(default_factory=list)  # what could not be measured, and why
    base_failures: list[str] = field(default_factory=list)
    not_compared: int = 0  # benchmark code changed between the two results
    new_on_head: int = 0  # measured on HEAD, never on BASE
    skipped_families: list[str] = field(default_factory=list)  # --skip-family
    notes: list[str] = field(default_factory=list)  # what the run saw (load, a dirty tree)

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.regressed]

    @property
    def exit_code(self) -> int:
        """3 when anything selected was not measured on both commits; else 1 on a
        regression; else 0."""
        if self.failures or self.lost or self.faults:
            return EXIT_FAILURE
        return EXIT_REGRESSION if self.regressions else EXIT_OK

    def check_families(self, expected) -> None:
        """A fault for every family in ``expected`` with no row compared."""
        compared = {row.family for row in self.rows}
        named = {fault.split(":", 1)[0] for fault in self.faults}  # a cause given already
        for fam in sorted(set(expected) - compared - named - set(self.skipped_families)):
            self.faults.append(
                f"{fam}: selected, but nothing compared (every combination failed, skipped "
                "or not measured on one side)"
            )

    def counts(self) -> dict[str, tuple[int, int]]:
        """``{family: (compared, regressed)}``."""
        out: dict[str, list[int]] = {}
        for row in self.rows:
            c = out.setdefault(row.family, [0, 0])
            c[0] += 1
            c[1] += row.regressed
        return {k: (v[0], v[1]) for k, v in out.items()}


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
    for key in sorted(before.keys() - after.keys()):
        old = before[key]
        measured = not (old.failed or old.skipped)
        if measured and selected(old.label, pattern) and family(old) != "time":
            report.lost.append(f"{old.label} (not measured on HEAD)")
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
        if new.skipped:
            if old is not None and not (old.failed or old.skipped):
                report.lost.append(f"{new.label} (skipped on HEAD)")
            continue
        if old is None or old.skipped:
            report.new_on_head += 1
            continue
        if old.failed:
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
    faults: dict[str, list[str]] = {}  # one line per cause, naming its combinations
    for out in outcomes:
        if out.skipped:
            continue
        if out.fault:
            faults.setdefault(out.fault, []).append(out.case.label)
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
    for fault, labels in faults.items():
        shown = ", ".join(labels[:2]) + (f" and {len(labels) - 2} more" if len(labels) > 2 else "")
        report.faults.append(f"time: {shown}: {fault}")


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
busy_cores = load.busy_cores


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
    skip_families=(),
    allow_dirty: bool = False,
) -> GateRun:
    """Runs asv on BASE and HEAD (the deterministic families, once per commit), then the
    paired timings, stores them in asv's results and applies the thresholds. ``extra_env``:
    more environment for asv's run (e.g. ``SOFTMAXLOSS_INSTRUCTION_IMPLS``).
    ``skip_families``: left out of the selection, and said so.

    When HEAD's package is BASE's (:func:`package_key`) nothing is measured: whatever
    differs between the two is noise. BASE's deterministic results, where asv has them,
    are copied to HEAD (the site's history gets its point). ``measure_same_package``:
    measure and time them all the same (the detection-power study's no-ops).

    Refused before any work (``UsageError``, exit 2): BASE is HEAD, a config with several
    environments, uncommitted changes to the package (unless ``allow_dirty``).
    ``ToolError`` (exit 3) before any measuring: a family's tool missing, another gate in
    this checkout. Every fault after that is in the report (:attr:`Report.exit_code`)."""
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
    conf = os.path.join(repo, conf_file)
    results_dir = config.results_dir(conf)
    env_name = results.environment(conf).name
    notes = []
    dirty = runner.dirty_paths(repo, PACKAGE_PATHS) if head == runner.resolve(repo, "HEAD") else []
    if dirty:
        shown = ", ".join(dirty[:5]) + (", ..." if len(dirty) > 5 else "")
        if not allow_dirty:
            raise UsageError(
                f"uncommitted changes to the package ({shown}): the gate measures the "
                "committed HEAD; commit them, or pass --allow-dirty to gate HEAD without them"
            )
        notes.append(f"uncommitted changes to the package not measured: {shown}")
    with runner.checkout_lock(repo, "gate"):
        say(f"gate: BASE {base[:8]}, HEAD {head[:8]}; asv output in {log_path}")
        for line in results.repair(results_dir, machine, [base, head]):
            say(f"gate: {line}")
        if not measure_same_package and package_key(repo, base) == package_key(repo, head):
            copied, why = 0, ""
            try:
                copied = results.copy_commit(conf, machine, base, head)  # 0 where BASE has none
            except ToolError as exc:  # e.g. no asv machine file in this HOME
                why = f" ({exc})"
            say(
                f"gate: HEAD's package is BASE's ({', '.join(PACKAGE_PATHS[:2])} unchanged): "
                f"nothing to measure or time; {copied} of BASE's deterministic results copied "
                f"to HEAD{why} (--measure-same-package measures anyway)"
            )
            report = Report(notes=notes)
            return GateRun(base, head, report, time.monotonic() - start, 0, same_package=True)
        try:
            listed = results.load_benchmarks(results_dir)
        except ToolError:
            listed = None  # asv has not listed the suite here yet
        check_tools(pattern, skip_families, listed)
        runner.ensure_machine(machine, log_path=log_path)
        selection = without_families(pattern, skip_families)
        once, timed = split_selection(selection)
        holes = tool_benchmarks(skip_families)
        for line in results.repair(results_dir, machine, [base, head], holes=holes):
            say(f"gate: {line}")
        hashfile = runner.write_hashfile(workdir / "commits.txt", [base, head])
        args = runner.asv_args("run", conf, machine, launch_method)
        args += ["--skip-existing-successful", "-b", once, f"HASHFILE:{hashfile}"]
        env = {**os.environ, **(extra_env or {})}
        rc = runner.run_asv(
            args, repo=repo, log_path=log_path, on_line=progress_echo(echo), env=env,
            idle_limit=config.idle_limit(conf),
        )  # fmt: skip
        if rc not in (0, 2):
            raise ToolError(f"asv run ended with {runner.exit_text(rc)}; see {log_path}")
        listed = results.load_benchmarks(results_dir)
        cases = paired.cases(listed, timed) if "time" not in skip_families else []
        busy = busy_cores()
        if busy is not None and busy > BUSY_CORES_NOTE:
            say(
                f"gate: note: {busy:.1f} of {os.cpu_count()} cores busy with other work: the "
                "paired timings hold up, but two-thread timings cannot see a loss of "
                "parallelism"
            )
        with load.Sampler() as sampler:
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
        seen = sampler.summary()
        if seen is not None and cases:
            notes.append(f"other work during the paired timings: {seen}")
        faults = []
        if any(out.fault for out in outcomes):  # a failed run stores nothing
            say("gate: the paired timings are not stored: some could not be measured")
        else:
            for commit, side in ((base, "base"), (head, "head")):
                try:
                    paired.store(conf, machine, commit, outcomes, side)
                except ToolError as exc:
                    faults.append(f"time: the timings of {commit[:8]} were not stored: {exc}")
        try:
            before = results.load_commit(results_dir, machine, base, env_name=env_name)
            after = results.load_commit(results_dir, machine, head, env_name=env_name)
        except ToolError as exc:
            raise ToolError(f"{exc}; see {log_path}") from None
    report = compare(before, after, thresholds, once)
    add_paired(report, outcomes, settings)
    report.faults += faults
    report.notes += notes
    report.skipped_families = list(skip_families)
    report.check_families(
        {family_of_label(label, listed) for label in selected_labels(listed, selection)}
    )
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
    if report.skipped_families:
        lines.append(
            f"not measured, on request: {', '.join(report.skipped_families)} (--skip-family)"
        )
    lines += [f"NOT MEASURED: {fault}" for fault in report.faults]
    for what, labels in (
        ("FAILED on HEAD", report.failures),
        ("LOST on HEAD (measured on BASE)", report.lost),
    ):
        if labels:
            shown = ", ".join(labels[:3]) + (", ..." if len(labels) > 3 else "")
            lines.append(f"{what}: {len(labels)} ({shown})")
    if report.not_compared:
        lines.append(f"{report.not_compared} not compared (benchmark code changed)")
    if report.new_on_head:
        lines.append(f"{report.new_on_head} not compared: new on HEAD (BASE has no value)")
    if report.base_failures:
        shown = ", ".join(report.base_failures[:3]) + (
            ", ..." if len(report.base_failures) > 3 else ""
        )
        lines.append(f"{len(report.base_failures)} not compared: failed on BASE ({shown})")
    lines += [f"note: {note}" for note in report.notes]
    timed = [row for row in report.regressions if row.family == "time"]
    if timed:  # fresh worker pairs share their history: docs/gate.md, the rule's known limit
        label = paired.Case(timed[0].benchmark, timed[0].params).label  # the paired case's
        case = re.sub(r"([.()\[\]\\^$*+?{}|])", r"\\\1", label)  # as an asv -b regex, spaces kept
        lines.append(
            "note: a time regression on a change that cannot touch the loss's speed can be a "
            "false alarm (docs/gate.md: the three-pair rule's known limit); time "
            f"{'each such row' if len(timed) > 1 else 'it'} alone in fresh pairs, a reading near "
            f'1 is one: python -m lossbench paired BASE --head HEAD --bench "^{case}" --trials 6'
        )
    return lines
