"""The regression gate's reading of asv results, its decision, its tables and exit codes.

Everything here runs on synthetic asv result files written in asv 0.6's format (the same
layout a real ``asv run`` writes, read by asv's own reader; tests/test_gate_power.py runs
the real thing). The paired timings' decision: tests/test_paired.py.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from gitrepo import GIT_ID

import softmaxloss
from benchmarks import common
from lossbench import gate, paired, results, torch_versions
from lossbench.commands import build_parser
from lossbench.commands import gate as gate_cmd
from lossbench.errors import ToolError, UsageError

ROOT = Path(__file__).resolve().parents[1]

MACHINE = "m"
BASE, HEAD = "a" * 40, "b" * 40
IMPLS2 = ["'manual'", "'torch'"]

BENCHMARKS = {
    "bench_time.TimeSoftmaxLoss.time_forward": {"type": "time", "unit": "seconds", "rounds": 3},
    "bench_instructions.InstructionsSoftmaxLoss.track_forward": {
        "type": "track",
        "unit": "instructions",
    },
    "bench_memory.MemSoftmaxLoss.peakmem_forward_backward": {"type": "peakmem", "unit": "bytes"},
    "bench_memory.MemSoftmaxLoss.track_extra_bytes": {"type": "track", "unit": "bytes"},
    "bench_precision.PrecisionSoftmaxLoss.track_grad_error": {"type": "track", "unit": "eps"},
    "bench_depth.Depth.track_layers": {"type": "track", "unit": "unitless"},
    "bench_other.plain": {"type": "track", "unit": "unitless"},
}
COLUMNS = ["result", "params", "version", "started_at", "duration", "samples"]


def write_results(root: Path, commit: str, rows: dict) -> None:
    """``rows``: {name: (values, params, version, samples)} as asv stores them, in a complete
    asv 0.6 result file (asv's own reader loads it) beside a ``machine.json``."""
    (root / MACHINE).mkdir(parents=True, exist_ok=True)
    infos = {n: {**i, "name": n, "version": "v"} for n, i in BENCHMARKS.items()}
    (root / "benchmarks.json").write_text(json.dumps({**infos, "version": 2}))
    (root / MACHINE / "machine.json").write_text(json.dumps({"machine": MACHINE, "version": 1}))
    data = {
        "commit_hash": commit,
        "env_name": "env",
        "version": 2,
        "params": {"machine": MACHINE, "python": "3.11"},
        "requirements": {},
        "python": "3.11",
        "date": 0,
        "result_columns": COLUMNS,
        "results": {
            name: [values, params, version, 0, 1.0, samples]
            for name, (values, params, version, samples) in rows.items()
        },
    }
    (root / MACHINE / f"{commit[:8]}-env.json").write_text(json.dumps(data))


def one_each(time=(1e-3, 2e-3), version="v", **values):
    """Rows for BASE or HEAD: one value per impl; keyword values override defaults."""
    v = {
        "instructions": [1000, 2000],
        "peakmem": [3e8, 3e8],
        "extra": [4e7, 4e7],
        "eps": [1.0, 2.0],
        **values,
    }
    return {
        "bench_time.TimeSoftmaxLoss.time_forward": (list(time), [IMPLS2], version, None),
        "bench_instructions.InstructionsSoftmaxLoss.track_forward": (
            v["instructions"],
            [IMPLS2],
            version,
            None,
        ),
        "bench_memory.MemSoftmaxLoss.peakmem_forward_backward": (v["peakmem"], [IMPLS2], "v", None),
        "bench_memory.MemSoftmaxLoss.track_extra_bytes": (v["extra"], [IMPLS2], "v", None),
        "bench_precision.PrecisionSoftmaxLoss.track_grad_error": (v["eps"], [IMPLS2], "v", None),
    }


def load_pair(tmp_path, base_rows, head_rows):
    write_results(tmp_path, BASE, base_rows)
    write_results(tmp_path, HEAD, head_rows)
    return (
        results.load_commit(str(tmp_path), MACHINE, BASE),
        results.load_commit(str(tmp_path), MACHINE, HEAD),
    )


# ---- reading results -----------------------------------------------------------------------


def test_parse_values_failed_skipped_and_labels(tmp_path):
    nan = float("nan")
    write_results(
        tmp_path,
        BASE,
        {
            "bench_time.TimeSoftmaxLoss.time_forward": (
                [1e-3, None, nan, 4e-3],
                [IMPLS2, ["'cpu'", "'cuda'"]],
                "v1",
                [[1e-3, 1.1e-3], None, None, [4e-3]],
            ),
            "bench_memory.MemSoftmaxLoss.track_extra_bytes": (None, [IMPLS2], "v", None),
            "bench_other.plain": ([7.0], [], "v", None),
        },
    )
    got = results.load_commit(str(tmp_path), MACHINE, BASE)
    t = "bench_time.TimeSoftmaxLoss.time_forward"
    ok = got[t, ("'manual'", "'cpu'")]
    assert ok.value == 1e-3 and not ok.failed and not ok.skipped
    assert ok.samples == (1e-3, 1.1e-3) and ok.unit == "seconds" and ok.kind == "time"
    assert ok.version == "v1"
    assert ok.label == f"{t}('manual', 'cpu')"
    assert got[t, ("'manual'", "'cuda'")].failed
    assert got[t, ("'torch'", "'cpu'")].skipped
    assert got[t, ("'torch'", "'cuda'")].value == 4e-3
    # asv compresses "every combination failed" to a bare null
    extra = "bench_memory.MemSoftmaxLoss.track_extra_bytes"
    assert got[extra, ("'manual'",)].failed and got[extra, ("'torch'",)].failed
    plain = got["bench_other.plain", ()]
    assert plain.value == 7.0 and plain.label == "bench_other.plain"


def test_missing_results_and_wrong_format_are_errors(tmp_path):
    write_results(tmp_path, BASE, {"bench_other.plain": ([7.0], [], "v", None)})
    with pytest.raises(ToolError, match="no asv results for bbbbbbbb"):
        results.load_commit(str(tmp_path), MACHINE, HEAD)
    path = tmp_path / MACHINE / f"{BASE[:8]}-env.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "version": 1}))  # asv's reader refuses it
    with pytest.raises(ToolError, match="no asv results for aaaaaaaa"):
        results.load_commit(str(tmp_path), MACHINE, BASE)
    with pytest.raises(ToolError, match="no benchmark list"):
        results.load_commit(str(tmp_path / "nowhere"), MACHINE, BASE)
    # asv find writes no benchmarks.json: bisect reads values without units
    path.write_text(json.dumps(data))
    (tmp_path / "benchmarks.json").unlink()
    with pytest.raises(ToolError, match="no benchmark list"):
        results.load_commit(str(tmp_path), MACHINE, BASE)
    plain = results.load_commit(str(tmp_path), MACHINE, BASE, need_units=False)
    assert [(r.value, r.unit) for r in plain.values()] == [(7.0, "unknown")]


def test_family_by_type_and_unit(tmp_path):
    base, _ = load_pair(tmp_path, one_each(), one_each())
    fam = {k[0].rsplit(".", 1)[1]: gate.family(r) for k, r in base.items()}
    assert fam == {
        "time_forward": "time",
        "track_forward": "instructions",
        "peakmem_forward_backward": "memory",
        "track_extra_bytes": "memory",
        "track_grad_error": "precision",
    }


# ---- the decision -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("family", "field", "base_value", "below", "above"),
    [
        ("instructions", "instructions", 1000, 1029, 1031),
        ("memory", "peakmem", 3e8, 3.29e8, 3.31e8),
        ("memory", "extra", 4e7, 4.39e7, 4.41e7),
        ("precision", "eps", 2.0, 2.9, 3.1),
    ],
)
def test_threshold_per_family(tmp_path, family, field, base_value, below, above):
    thresholds = {"instructions": 1.03, "memory": 1.10, "precision": 1.5, "time": 1.2}
    base_vals = {field: [base_value, base_value]}
    head_vals = {field: [below, above]}
    before, after = load_pair(tmp_path, one_each(**base_vals), one_each(**head_vals))
    report = gate.compare(before, after, thresholds)
    bad = [(r.family, r.params) for r in report.regressions]
    assert bad == [(family, ("'torch'",))]
    row = report.regressions[0]
    assert row.ratio == pytest.approx(above / base_value) and row.threshold == thresholds[family]
    assert report.exit_code == gate.EXIT_REGRESSION
    counts = report.counts()
    assert counts[family][1] == 1 and sum(c[1] for c in counts.values()) == 1


def test_failures_skips_versions_and_selection(tmp_path):
    nan = float("nan")
    base_rows = one_each(instructions=[None, 1000], eps=[nan, 1.0])
    head_rows = one_each(instructions=[1000, None], eps=[5.0, nan], extra=[9e7, 4e7])
    peak = "bench_memory.MemSoftmaxLoss.peakmem_forward_backward"
    head_rows[peak] = ([9e8, 9e8], [IMPLS2], "v2", None)
    before, after = load_pair(tmp_path, base_rows, head_rows)
    report = gate.compare(before, after)
    assert report.failures == ["bench_instructions.InstructionsSoftmaxLoss.track_forward('torch')"]
    assert report.base_failures == [
        "bench_instructions.InstructionsSoftmaxLoss.track_forward('manual')"
    ]
    assert report.not_compared == 2  # the peakmem benchmark's code changed (version v -> v2)
    # measured on BASE, skipped on HEAD: lost, a fault; skipped on BASE only: new on HEAD
    precision = "bench_precision.PrecisionSoftmaxLoss.track_grad_error"
    assert report.lost == [f"{precision}('torch') (skipped on HEAD)"]
    assert report.new_on_head == 1
    assert gate.summary_lines(report)[1:] == [
        "FAILED on HEAD: 1 (bench_instructions.InstructionsSoftmaxLoss.track_forward('torch'))",
        f"LOST on HEAD (measured on BASE): 1 ({precision}('torch') (skipped on HEAD))",
        "2 not compared (benchmark code changed)",
        "1 not compared: new on HEAD (BASE has no value)",
        "1 not compared: failed on BASE "
        "(bench_instructions.InstructionsSoftmaxLoss.track_forward('manual'))",
    ]  # a combination BASE could not measure is said, not silently left out
    assert not any(r.family in ("time", "precision", "instructions") for r in report.rows)
    assert [r.benchmark.rsplit(".", 1)[1] for r in report.regressions] == ["track_extra_bytes"]
    assert report.exit_code == gate.EXIT_FAILURE  # a failure outranks the regression
    only_memory = gate.compare(before, after, pattern=r"^bench_memory\.")
    assert only_memory.failures == [] and only_memory.exit_code == gate.EXIT_REGRESSION


def test_nothing_regressed_exits_zero_and_zero_base_values(tmp_path):
    before, after = load_pair(tmp_path, one_each(extra=[0, 0]), one_each(extra=[0, 4096]))
    report = gate.compare(before, after)
    extra = {r.params: r.ratio for r in report.rows if r.benchmark.endswith("extra_bytes")}
    assert extra == {("'manual'",): 1.0, ("'torch'",): math.inf}
    assert gate.compare(before, before).exit_code == gate.EXIT_OK


def test_selection_follows_asv_and_splits_instruction_counts():
    label = "bench_time.TimeSoftmaxLoss.time_forward('manual', '128x100', 'float32', 'cpu')"
    once, timed = gate.split_selection(gate.GATE_BENCH)
    names = {
        "instr": "bench_instructions.InstructionsSoftmaxLoss.track_forward('manual', '128x100')",
        "time": label,
        "slow": "bench_time.SlowTimeSoftmaxLoss.time_forward('manual', '512x32000')",
        "fwdbwd": "bench_time.TimeSoftmaxLoss.time_forward_backward('manual', '128x100')",
        "mem": "bench_memory.MemSoftmaxLoss.peakmem_forward_backward('manual', '3200x3200')",
        "depth": "bench_depth.Depth.track_layers(3)",
        "compiled": label.replace("'manual'", "'compiled'"),
        "compiled_manual": label.replace("'manual'", "'compiled_manual'"),
        # torch's exp_, the same at every commit: on the site, never gated
        "floor": "bench_floor.TimeFloor.time_exp_('128x100', 'float32', 'cpu')",
    }
    import re

    selected = {k for k, n in names.items() if re.search(gate.GATE_BENCH, n)}
    assert selected == {"instr", "time", "mem"}
    assert {k for k, n in names.items() if re.search(once, n)} == {"instr", "mem"}
    assert {k for k, n in names.items() if re.search(timed, n)} == {"time"}


def test_tables_show_benchmark_parameters_metric_before_after_ratio(tmp_path):
    before, after = load_pair(tmp_path, one_each(), one_each(instructions=[1000, 5e6]))
    report = gate.compare(before, after)
    case = paired.Case("bench_time.TimeSoftmaxLoss.time_forward", ("'manual'",))
    timed = paired.Outcome(case, base_times=[1e-3] * 4, head_times=[3e-3] * 4)
    timed.confirm_groups, timed.p_value, timed.regressed = [[3.0] * 4], 0.0625, True
    gate.add_paired(report, [timed], paired.Settings(threshold=1.1))
    regressions = report.regressions
    text = gate.format_rows(regressions).splitlines()
    assert text[0].split() == ["benchmark", "parameters", "metric", "before", "after", "ratio"]
    assert set(text[1].strip()) == {"─"}
    assert [line.split() for line in text[2:]] == [
        [
            "bench_instructions.InstructionsSoftmaxLoss.track_forward",
            "torch",
            "instructions",
            "2k",
            "5M",
            "2500.000",
            "(>",
            "1.03)",
        ],
        ["bench_time.TimeSoftmaxLoss.time_forward", "manual", "time", "1.00ms", "3.00ms"]
        + ["3.000", "(>", "1.1,", "p=0.062)"],
    ]
    md = gate.format_rows(regressions, markdown=True).splitlines()
    assert md[0] == "| benchmark | parameters | metric | before | after | ratio |"
    assert len(md) == 2 + len(regressions)


# ---- the command ----------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["ok", "regression", "failure"])
def test_gate_command_exit_codes_and_job_summary(tmp_path, monkeypatch, capsys, outcome):
    base_rows = one_each()
    head_rows = one_each(instructions=[1000, 2000 if outcome == "ok" else 4000])
    if outcome == "failure":
        head_rows["bench_memory.MemSoftmaxLoss.track_extra_bytes"] = (None, [IMPLS2], "v", None)
    before, after = load_pair(tmp_path, base_rows, head_rows)

    def fake_run(repo, base, head, **kwargs):
        report = gate.compare(before, after, kwargs["thresholds"], kwargs["pattern"])
        return gate.GateRun(BASE, HEAD, report, 1.0, (0, 0))

    monkeypatch.setattr(gate, "run", fake_run)
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    parser = build_parser()
    args = parser.parse_args(["gate", "main", "--machine", MACHINE])
    rc = args.func(args)
    out = capsys.readouterr().out
    expected = {"ok": 0, "regression": 1, "failure": 3}[outcome]
    assert rc == expected
    assert f"gate: exit {expected}" in out
    md = summary.read_text()
    if outcome == "ok":
        assert "no regression" in out and "No regression." in md
    else:
        assert out.count("benchmark  ") <= 1  # one table at most
    if outcome == "regression":
        table = [line.split() for line in out.splitlines() if "track_forward" in line]
        assert table == [
            ["bench_instructions.InstructionsSoftmaxLoss.track_forward", "torch", "instructions"]
            + ["2k", "4k", "2.000", "(>", "1.03)"]
        ]
        assert "| bench_instructions.InstructionsSoftmaxLoss.track_forward | torch |" in md
    if outcome == "failure":
        extra = "bench_memory.MemSoftmaxLoss.track_extra_bytes"
        assert f"FAILED on HEAD: 2 ({extra}('manual'), {extra}('torch'))" in out
        assert f"`{extra}('torch')`" in md
        assert "gate: not everything selected was measured (above), so this is no pass" in out


def _cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "lossbench", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "GITHUB_STEP_SUMMARY": ""},
    )


def test_gate_with_unknown_base_is_one_line_exit_2():
    proc = _cli("gate", "no-such-revision-xyz")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m lossbench gate: error: BASE 'no-such-revision-xyz' is not a commit of this "
        "repository"
    ]
    bad = _cli("gate", "HEAD", "--threshold", "time=0.9")
    assert bad.returncode == 2 and "must be > 1" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_bisect_refuses_good_not_ancestor_of_bad(tmp_path):
    repo = tmp_path / "r"
    repo.mkdir()
    env = {**os.environ, **GIT_ID}
    for cmd in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "1"]):
        subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "2"], cwd=repo, env=env)
    proc = _cli("bisect", "HEAD", "HEAD~1", "--bench", "x", "--repo", str(repo))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "python -m lossbench bisect: error: GOOD 'HEAD' is not an ancestor of BAD 'HEAD~1'"
    ]
    proc = _cli("bisect", "HEAD~1", "nope", "--bench", "x", "--repo", str(repo))
    assert proc.returncode == 2 and "BAD 'nope' is not a commit" in proc.stderr


def test_threshold_arguments():
    assert gate_cmd.parse_thresholds(["time=1.3", "memory=1.05"]) == {"time": 1.3, "memory": 1.05}
    for bad in (["time"], ["speed=2"], ["time=x"], ["time=1"]):
        with pytest.raises(UsageError):
            gate_cmd.parse_thresholds(bad)


# ---- the suite's skip rules (kept from the previous gate tests) ------------------------------


def test_registry_names_are_in_the_fixed_impl_grid():
    # The suite's impl param is a fixed list; a registered name missing from it is unmeasured.
    assert set(softmaxloss.IMPLEMENTATIONS) <= set(common.IMPLS)


def test_timings_are_left_to_the_paired_method(tmp_path):
    before, after = load_pair(tmp_path, one_each(time=(1e-3, 1e-3)), one_each(time=(9, 9)))
    assert not [r for r in gate.compare(before, after).rows if r.family == "time"]


def test_missing_impl_and_device_skip_not_fail():
    with pytest.raises(NotImplementedError):
        common.get_impl("no_such_impl")
    if not torch.cuda.is_available():
        with pytest.raises(NotImplementedError):
            common.prepare("manual", "128x100", "float32", "cuda")
    with pytest.raises(NotImplementedError):  # the naive pair raises TypeError on bfloat16
        common.prepare("naive_manual", "128x100", "bfloat16", "cpu")


def test_torch_version_ratios_flag_only_regressions_measured_under_both():
    base = {("t", "a"): 1.0, ("t", "b"): 2.0, ("e", "c"): 1.0, ("t", "gone"): 1.0}
    other = {("t", "a"): 2.5, ("t", "b"): 1.0, ("e", "c"): None, ("t", "new"): 9.0}
    rows = torch_versions.compare(base, other, factor=2.0)
    assert [(r[0], r[1], r[4], r[5]) for r in rows] == [
        ("t", "a", 2.5, True),
        ("t", "b", 0.5, False),
    ]


def test_busy_cores_reads_the_share_of_non_idle_time(tmp_path, monkeypatch):
    """/proc/stat's first line: user nice system idle iowait ...; 3 of 4 jiffies busy on 2
    cores is 1.5 cores; no such file, no figure."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 0 100 700 100 0 0 0 0 0\n")

    def later(seconds):  # the second sample: +300 busy, +100 idle
        stat.write_text("cpu  300 0 200 750 150 0 0 0 0 0\n")

    monkeypatch.setattr(gate.time, "sleep", later)
    monkeypatch.setattr(gate.os, "cpu_count", lambda: 2)
    assert gate.busy_cores(stat=str(stat)) == pytest.approx(1.5)
    assert gate.busy_cores(stat=str(tmp_path / "none")) is None


def test_a_head_with_bases_package_is_not_measured_and_gets_bases_counts(tmp_path, monkeypatch):
    """A README-only HEAD: the same package key, no asv run, no timing; BASE's deterministic
    results (not its timings) copied to HEAD through asv's reader. A package edit, even a
    comment, changes the key."""
    repo = tmp_path / "repo"
    (repo / "softmaxloss").mkdir(parents=True)
    (repo / "softmaxloss" / "__init__.py").write_text("x = 1\n")
    for name in ("pyproject.toml", "asv.conf.json"):
        (repo / name).write_text((ROOT / name).read_text())
    (repo / "README.md").write_text("# r\n")
    env = {**os.environ, **GIT_ID}

    def commit(message):
        for args in (["add", "-A"], ["commit", "-qm", message], ["rev-parse", "HEAD"]):
            out = subprocess.run(["git", *args], cwd=repo, env=env, check=True, text=True,
                                 capture_output=True).stdout.strip()  # fmt: skip
        return out

    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    base = commit("base")
    (repo / "README.md").write_text("# r\n\nmore words\n")
    docs = commit("docs")
    (repo / "softmaxloss" / "__init__.py").write_text("x = 1  # a comment\n")
    code = commit("code")
    assert gate.package_key(repo, base) == gate.package_key(repo, docs)
    assert gate.package_key(repo, docs) != gate.package_key(repo, code)

    # BASE's results as asv run writes them: a count and a timing
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes", "--machine", MACHINE],
                   cwd=repo, check=True, capture_output=True)  # fmt: skip
    conf = str(repo / "asv.conf.json")
    names = {
        "bench_instructions.I.track_forward": ("track", "instructions", 1234.0),
        "bench_time.T.time_forward": ("time", "seconds", 0.5),
    }
    infos = {
        name: {"name": name, "type": kind, "unit": unit, "version": "v1",
               "params": [["'manual'"]], "param_names": ["impl"]}
        for name, (kind, unit, _) in names.items()
    }  # fmt: skip
    out = repo / ".asv" / "results"
    out.mkdir(parents=True)
    (out / "benchmarks.json").write_text(json.dumps({**infos, "version": 2}))
    from asv.machine import Machine
    from asv.runner import BenchmarkResult

    Machine.load(machine_name=MACHINE, interactive=False).save(str(out))  # as asv run does
    res, _ = results.open_for_writing(conf, MACHINE, base)
    for name, (_, _, value) in names.items():
        got = BenchmarkResult([value], [None], [None], 0, "", None)
        res.add_result(infos[name], got)
    res.save(str(out))

    def no_asv(*args, **kwargs):
        raise AssertionError("asv ran for a HEAD with BASE's package")

    monkeypatch.setattr(gate.runner, "run_asv", no_asv)
    monkeypatch.setattr(gate.paired, "measure", no_asv)
    echoed = []
    run = gate.run(str(repo), base, docs, machine=MACHINE, echo=echoed.append)
    assert run.same_package and run.report.rows == [] and run.report.exit_code == 0
    assert "1 of BASE's deterministic results copied" in echoed[-1]
    after = results.load_commit(out, MACHINE, docs)
    assert [(r.benchmark, r.value, r.version) for r in after.values()] == [
        ("bench_instructions.I.track_forward", 1234.0, "v1")
    ]
    assert gate.summary_lines(run.report, same_package=True) == [
        "HEAD's package is BASE's: nothing measured"
    ]
    # again: HEAD's results are kept, not written over
    run = gate.run(str(repo), base, docs, machine=MACHINE, echo=echoed.append)
    assert "0 of BASE's deterministic results copied" in echoed[-1]
    # no asv machine file in this HOME: still a pass, and the reason nothing was copied
    for path in (out / MACHINE).glob(f"{docs[:8]}-*.json"):
        path.unlink()
    monkeypatch.setenv("HOME", str(tmp_path))
    run = gate.run(str(repo), base, docs, machine=MACHINE, echo=echoed.append)
    assert run.same_package and run.report.exit_code == 0
    assert (
        "0 of BASE's deterministic results copied to HEAD (asv knows no machine 'm'" in echoed[-1]
    )


def _time_row(params, ratio, threshold=1.1):
    bench = "bench_time.TimeSoftmaxLoss.time_backward"
    return gate.Row(bench, params, "time", "seconds", 1e-3, 1e-3 * ratio, ratio, threshold,
                    ratio > threshold)  # fmt: skip


def test_a_time_regression_comes_with_the_command_that_times_it_alone():
    """Fresh worker pairs share their history (docs/gate.md): the summary of a time
    regression gives the paired command whose --bench selects that one case, as asv would."""
    flagged = ("'naive_manual'", "'1024x1000'", "'float32'", "'cpu'")
    other = ("'naive_manual'", "'1024x10000'", "'float32'", "'cpu'")
    report = gate.Report(rows=[_time_row(other, 1.02), _time_row(flagged, 1.19)])
    hint = [line for line in gate.summary_lines(report) if "lossbench paired" in line]
    assert len(hint) == 1 and hint[0].startswith("note: ") and "--trials 6" in hint[0]
    regex = hint[0].split('--bench "', 1)[1].split('"', 1)[0]
    benchmarks = {"bench_time.TimeSoftmaxLoss.time_backward": {"type": "time", "params": [
        ["'naive_manual'", "'manual'"], ["'1024x1000'", "'1024x10000'"], ["'float32'"], ["'cpu'"]
    ]}}  # fmt: skip
    assert [c.params for c in paired.cases(benchmarks, regex)] == [flagged]
    quiet = gate.Report(rows=[_time_row(flagged, 1.05)])
    assert not any("lossbench paired" in line for line in gate.summary_lines(quiet))
