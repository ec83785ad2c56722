"""The gate's detection power: known regressions and no-ops, each judged by the real gate.

``python -m lossbench detection-power`` (``make detection-power``) clones the repository
at HEAD into a work folder and commits, each on its own branch off HEAD (the base), the
no-ops and the injections of :mod:`lossbench.injections` (Python and C++). Then, run after
run, it runs the gate itself (:func:`lossbench.gate.run`) on base vs each commit: the
deterministic families measured once per commit (asv skips what it has), the paired
timings afresh every run. No-ops are gated once each, on the gate's whole selection;
injections on their implementation's benchmarks, every run where timings must catch them,
once where the deterministic families decide (the same verdict every run). Every
comparison's rows are saved as soon as it ends (``study.json``, replaced atomically), so a
study stopped at any point goes on where it stopped when run again with the same
``--workdir`` (more ``--runs`` add runs).

Each injection's native time factor is measured apart, by the paired timings with more
pairs (``FACTOR_PAIRS`` in ``FACTOR_TRIALS`` fresh worker pairs) on the cases it targets:
the study's table is indexed by that factor and by the instruction counts' factor.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from lossbench import config, gate, paired, results, runner
from lossbench.errors import UsageError
from lossbench.injections import CATALOGUE, Injection, noops

GIT_ID = {
    "GIT_AUTHOR_NAME": "detection-power",
    "GIT_AUTHOR_EMAIL": "detection-power@example.invalid",
    "GIT_COMMITTER_NAME": "detection-power",
    "GIT_COMMITTER_EMAIL": "detection-power@example.invalid",
}
MACHINE = "detection"
FACTOR_PAIRS = 16
FACTOR_TRIALS = 3
FAMILIES = gate.FAMILIES


def build_history(source, clone: Path, plan: list[Injection]) -> dict[str, str]:
    """Clones ``source`` at HEAD into ``clone``; one commit per change, each off the base.
    Returns ``{"base": hash, name: hash, ...}``."""
    head = runner.resolve(source, "HEAD")
    env = {**os.environ, **GIT_ID}  # the study's commits, whoever runs it
    runner.git(
        Path(clone).parent, "clone", "--quiet", "--no-local", str(source), str(clone), env=env
    )
    runner.git(clone, "checkout", "--quiet", "-B", "detection-base", head, env=env)
    commits = {"base": head}
    for change in plan:
        runner.git(clone, "checkout", "--quiet", "-B", change.name, head, env=env)
        change.apply(Path(clone))
        runner.git(clone, "add", "-A", env=env)
        runner.git(clone, "commit", "--quiet", "-m", f"detection-power: {change.label}", env=env)
        commits[change.name] = runner.git(clone, "rev-parse", "HEAD", env=env)
    runner.git(clone, "checkout", "--quiet", "detection-base", env=env)
    return commits


def impl_subset(pattern: str, impl: str) -> str:
    """The benchmarks of ``pattern`` whose first parameter is ``impl``."""
    return rf"^(?=.*\('{re.escape(impl)}', )(?:{pattern})"


def selection(change: Injection, pattern: str) -> str:
    return pattern if change.kind == "noop" else impl_subset(pattern, change.impl)


# ---- the study's record ---------------------------------------------------------------------


class Study:
    """``study.json`` in the work folder: the plan, the commits, every comparison done."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir).resolve()
        self.path = self.workdir / "study.json"
        self.clone = self.workdir / "repo"

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except OSError as exc:
            raise UsageError(f"no study in {self.workdir} ({exc.strerror})") from None

    def save(self, data: dict) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)  # a study stopped mid-write keeps its last whole state


def plan_of(data: dict) -> list[Injection]:
    return [Injection(**c) for c in data["plan"]]


def chosen(changes: list[Injection], only: list[str] | None) -> list[Injection]:
    """The changes named in ``only`` (all of them without it), in their order."""
    return [c for c in changes if only is None or c.name in only]


def run_order(plan: list[Injection]) -> list[Injection]:
    """No-ops and injections taken in turn, so that a study stopped early has both."""
    first = [c for c in plan if c.kind == "noop"]
    second = [c for c in plan if c.kind != "noop"]
    order = []
    for i in range(max(len(first), len(second))):
        order += first[i : i + 1] + second[i : i + 1]
    return order


def start(source, workdir: Path, n_noops: int, names: list[str]) -> dict:
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise UsageError(f"unknown injections {unknown}; known: {', '.join(CATALOGUE)}")
    study = Study(workdir)
    if study.exists() or study.clone.exists():
        raise UsageError(f"{workdir} already holds a study: give a new --workdir")
    plan = noops(n_noops) + [CATALOGUE[n] for n in names]
    study.workdir.mkdir(parents=True, exist_ok=True)
    commits = build_history(source, study.clone, plan)
    data = {"plan": [asdict(c) for c in plan], "commits": commits, "runs": [], "factors": {}}
    study.save(data)
    return data


def _outcome_record(out: paired.Outcome) -> dict:
    return {
        "label": out.case.label,
        "skipped": out.skipped,
        "error": out.error,
        "fault": out.fault,
        "screen": out.screen_ratios,
        "confirm": out.confirm_ratios,
        "confirm_groups": out.confirm_groups,
        "p": out.p_value,
        "regressed": out.regressed,
    }


# The timing rule of the comparisons recorded before the rule was kept with each of them
# (until 2026-12-02): the confirm stage in one fresh worker pair of 12 pairs.
RULE_ONE_PAIR = "screen 6 pairs > 1.05; confirm 1 worker pair x 12, median > t, sign test"


def rule_of(record: dict) -> str:
    return record.get("rule", RULE_ONE_PAIR)


def under_rule(data: dict, rule: str) -> dict:
    """The study with the comparisons made under the timing rule ``rule`` only: a study
    goes on under a new rule with comparisons of its own; the earlier ones stay on record."""
    return {**data, "runs": [r for r in data["runs"] if rule_of(r) == rule]}


def earlier_rules(data: dict, rule: str) -> list[str]:
    """One line per earlier timing rule: its comparisons and the no-ops' false alarms."""
    kinds = {c.name: c.kind for c in plan_of(data)}
    out = []
    for old in sorted({rule_of(r) for r in data["runs"]} - {rule}):
        records = [r for r in data["runs"] if rule_of(r) == old]
        noops = [r for r in records if kinds[r["change"]] == "noop"]
        alarms = sum(any(row["regressed"] for row in r["rows"]) for r in noops)
        out.append(
            f"earlier rule ({old}): {len(records)} comparisons on record, not in the table; "
            f"no-ops: {alarms} of {len(noops)} with a false alarm"
        )
    return out


def run(
    workdir: Path,
    runs: int,
    pattern: str = gate.GATE_BENCH,
    settings: paired.Settings | None = None,
    echo: Callable[[str], None] = print,
    only: list[str] | None = None,
) -> dict:
    """Runs every comparison not done yet, up to ``runs`` runs; then the native factors.
    ``only``: these changes of the plan and no other (a study run in pieces, the changes
    that matter most first)."""
    study = Study(workdir)
    data = study.load()
    names = [c.name for c in plan_of(data)]
    unknown = sorted(set(only or ()) - set(names))
    if unknown:
        raise UsageError(
            f"--only: {', '.join(unknown)} not in the study (it has {', '.join(names)})"
        )
    clone = study.clone
    base = data["commits"]["base"]
    rule = (settings or paired.Settings()).rule
    done = {(r["run"], r["change"]) for r in data["runs"] if rule_of(r) == rule}
    env = {"HOME": str(study.workdir / "home")}
    Path(env["HOME"]).mkdir(exist_ok=True)
    os.environ.update(env)  # asv's machine file of the study's own
    for run_no in range(1, runs + 1):
        for change in chosen(run_order(plan_of(data)), only):
            if (run_no, change.name) in done or (run_no > 1 and not change.every_run):
                continue
            echo(f"detection-power: run {run_no}, {change.name}")
            started = time.monotonic()
            gated = gate.run(
                str(clone),
                base,
                data["commits"][change.name],
                machine=MACHINE,
                pattern=selection(change, pattern),
                settings=settings,
                echo=echo,
                extra_env={"SOFTMAXLOSS_INSTRUCTION_IMPLS": change.impl}
                if change.kind != "noop"
                else None,
                # the no-ops change the README only: measured all the same
                measure_same_package=True,
            )
            data["runs"].append(
                {
                    "run": run_no,
                    "change": change.name,
                    "rule": rule,
                    "seconds": time.monotonic() - started,
                    "busy_cores": gated.busy_cores,
                    "rows": [asdict(r) for r in gated.report.rows],
                    "failures": gated.report.failures,
                    "faults": gated.report.faults,
                    "paired": [_outcome_record(o) for o in gated.outcomes],
                }
            )
            study.save(data)
    measure_factors(study, data, echo, only)
    return data


def measure_factors(study: Study, data: dict, echo, only: list[str] | None = None) -> None:
    """Each injection's native time factor on its target cases: the paired timings'
    median ratio over ``FACTOR_TRIALS`` fresh worker pairs of ``FACTOR_PAIRS`` pairs."""
    conf = str(study.clone / "asv.conf.json")
    benchmarks = results.load_benchmarks(config.results_dir(conf))
    python = paired.environment_python(conf)
    for change in chosen(plan_of(data), only):
        if change.kind == "noop" or change.name in data["factors"] or not change.methods:
            continue
        methods = "|".join(m for m in change.methods if m.startswith("time_"))
        sizes = "|".join(change.sizes)
        if not methods:
            continue
        dtype = change.dtype or "float32"
        pattern = (
            rf"^{re.escape(change.timed)}\.({methods})\('{change.impl}', '({sizes})', '{dtype}', "
        )
        cases = paired.cases(benchmarks, pattern)
        echo(f"detection-power: native factor of {change.name}: {len(cases)} cases")
        trials = paired.trials(
            study.clone,
            data["commits"]["base"],
            data["commits"][change.name],
            cases,
            FACTOR_TRIALS,
            FACTOR_PAIRS,
            python=python,
            workdir=study.workdir / "factors",
        )
        data["factors"][change.name] = {
            c.label: paired.trial_medians(trials, i) for i, c in enumerate(cases)
        }
        study.save(data)


# ---- the table -------------------------------------------------------------------------------


def _size(params) -> str:
    return params[1].strip("'") if len(params) > 1 else ""


def _method(benchmark: str) -> str:
    return benchmark.rsplit(".", 1)[-1]


def _region(method: str) -> str:
    """What a method measures, whatever the metric: ``track_cycles_forward`` and
    ``time_forward`` both measure ``forward``."""
    for prefix in ("track_cycles_", "track_ll_misses_", "track_", "time_", "peakmem_"):
        if method.startswith(prefix):
            return method[len(prefix) :]
    return method


def _targets(change: Injection, row: dict) -> bool:
    """A row at the change's target: timings of its timed class and methods; the
    deterministic families at the regions of its methods; of its dtype only, where it
    changes one."""
    if change.dtype and f"'{change.dtype}'" not in row["params"]:
        return False
    if row["family"] == "time":
        return row["benchmark"].startswith(change.timed + ".") and row["method"] in change.methods
    return _region(row["method"]) in {_region(m) for m in change.methods}


def evaluate(data: dict, thresholds: dict | None = None) -> list[dict]:
    """Every compared row of every run, re-decided at ``thresholds`` (the deterministic
    families by ratio; the paired timings by their stored confirm ratios and p-values)."""
    limits = gate.limits_of(thresholds)
    kinds = {c.name: c.kind for c in plan_of(data)}
    out = []
    for record in data["runs"]:
        suspects = [p for p in record["paired"] if p["confirm"]]
        for row in record["rows"]:
            regressed = row["ratio"] > limits.get(row["family"], limits["other"])
            if row["family"] == "time":
                label = f"{row['benchmark']}({', '.join(row['params'])})"
                match = next((p for p in record["paired"] if p["label"] == label), None)
                regressed = bool(
                    match
                    and match["confirm"]
                    and paired.decide(
                        match.get("confirm_groups") or [match["confirm"]],  # one pair: before
                        match["p"],
                        max(1, len(suspects)),
                        replace(paired.Settings(), threshold=limits["time"]),
                    )
                )
            out.append(
                {
                    "run": record["run"],
                    "change": record["change"],
                    "kind": kinds[record["change"]],
                    "family": row["family"],
                    "benchmark": row["benchmark"],
                    "method": _method(row["benchmark"]),
                    "size": _size(row["params"]),
                    "params": row["params"],
                    "ratio": row["ratio"],
                    "regressed": regressed,
                }
            )
        for label in record["failures"]:
            out.append(
                {
                    "run": record["run"],
                    "change": record["change"],
                    "kind": kinds[record["change"]],
                    "family": "failed",
                    "benchmark": label,
                    "method": "",
                    "size": "",
                    "params": [label],
                    "ratio": None,
                    "regressed": True,
                }
            )
    return out


def _caught(rows: list[dict]) -> str:
    """``k/n``: runs with a regression among ``rows`` / runs that compared any of them."""
    runs = {(r["run"], r["change"]) for r in rows}
    if not runs:
        return "-"
    hit = {(r["run"], r["change"]) for r in rows if r["regressed"]}
    return f"{len(hit)}/{len(runs)}"


def _median(values) -> str:
    values = [v for v in values if v is not None]
    return f"{statistics.median(values):.3f}" if values else "-"


def table(data: dict, rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One line for the no-ops; one per injection and target size: its native time factor
    (paired, median over trials and methods), its instruction factor, and per family the
    runs that caught it at that size / the runs; then the gate's verdict on the commit."""
    header = ["change", "size", "native time", "instr. factor", *FAMILIES, "gate (any)"]
    lines = []
    noop = [r for r in rows if r["kind"] == "noop"]
    if noop:
        n = len({r["change"] for r in noop})
        cells = [_caught([r for r in noop if r["family"] == f]) for f in FAMILIES]
        lines.append([f"no-op ({n} commits)", "all", "-", "-", *cells, _caught(noop)])
    for change in plan_of(data):
        if change.kind == "noop":
            continue
        mine = [r for r in rows if r["change"] == change.name]
        factors = data["factors"].get(change.name, {})
        for size in change.sizes:
            at = [r for r in mine if r["size"] == size and _targets(change, r)]
            native = [v for label, vs in factors.items() if f"'{size}'" in label for v in vs]
            instr = [r["ratio"] for r in at if r["family"] == "instructions" and r["run"] == 1]
            cells = [_caught([r for r in at if r["family"] == f]) for f in FAMILIES]
            lines.append(
                [change.label, size, _median(native), _median(instr), *cells, _caught(mine)]
            )
    return header, lines


def same_code_spread(rows: list[dict]) -> dict[str, dict]:
    """Per family, over the no-ops: comparisons, largest ratio, its 99th percentile."""
    out = {}
    for fam in FAMILIES:
        xs = sorted(r["ratio"] for r in rows if r["kind"] == "noop" and r["family"] == fam)
        if xs:
            out[fam] = {
                "n": len(xs),
                "max": xs[-1],
                "p99": xs[min(len(xs) - 1, int(0.99 * len(xs)))],
            }
    return out


def paired_spread(data: dict) -> tuple[list[str], list[list[str]]]:
    """The paired timings on the no-ops (the same code on both sides), by timed class and
    size: combinations screened, the range of their screen medians, how many became
    suspects, the largest confirm median, and how many regressed (false alarms)."""
    kinds = {c.name: c.kind for c in plan_of(data)}
    groups: dict[tuple[str, str], list[dict]] = {}
    for record in data["runs"]:
        if kinds[record["change"]] != "noop":
            continue
        for p in record["paired"]:
            if p["skipped"] or p["error"] or not p["screen"]:
                continue
            size = re.search(r"'(\d+x\d+)'", p["label"])
            key = (p["label"].split("(", 1)[0].rsplit(".", 1)[0], size.group(1) if size else "")
            groups.setdefault(key, []).append(p)
    header = ["timed class", "size", "combinations", "screen medians", "suspects",
              "largest confirm median", "regressed"]  # fmt: skip
    lines = []

    def order(key):
        rows, _, cols = key[1].partition("x")
        return key[0], int(rows or 0) * int(cols or 0)

    for (cls, size), ps in sorted(groups.items(), key=lambda kv: order(kv[0])):
        screen = sorted(statistics.median(p["screen"]) for p in ps)
        confirm = [statistics.median(p["confirm"]) for p in ps if p["confirm"]]
        lines.append(
            [
                cls,
                size,
                str(len(ps)),
                f"{screen[0]:.3f}-{screen[-1]:.3f}",
                str(len(confirm)),
                f"{max(confirm):.3f}" if confirm else "-",
                str(sum(bool(p["regressed"]) for p in ps)),
            ]
        )
    return header, lines
