"""The detection study (``lossbench.study``) without measuring: the scratch history it
commits, a study stopped midway going on where it stopped, and its table re-decided at other
thresholds. The real thing runs in tests/test_gate_power.py (slow) and ``make
detection-power``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lossbench import gate, paired, study
from lossbench.errors import UsageError
from lossbench.injections import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


def _changed(clone, commit):
    out = subprocess.run(
        ["git", "diff", "--name-only", "detection-base", commit],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(out.stdout.split())


def test_the_scratch_history_changes_one_thing_per_commit(tmp_path):
    data = study.start(ROOT, tmp_path / "w", 1, ["py-precision-x4", "cpp-serial"])
    clone = tmp_path / "w" / "repo"
    commits = data["commits"]
    assert _changed(clone, commits["noop-1"]) == ["README.md"]
    assert _changed(clone, commits["py-precision-x4"]) == [
        "softmaxloss/__init__.py",
        "softmaxloss/_study_injection.py",
    ]
    (cpp_file,) = _changed(clone, commits["cpp-serial"])
    assert cpp_file.startswith("softmaxloss/csrc/")
    # the injected package imports, and its registry entry is the injection's wrapper
    tree = tmp_path / "tree"
    subprocess.run(
        ["git", "worktree", "add", "-q", str(tree), commits["py-precision-x4"]],
        cwd=clone,
        check=True,
    )
    probe = "import softmaxloss; print(softmaxloss.IMPLEMENTATIONS['manual'].__name__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["less_precise"]
    with pytest.raises(Exception, match="already holds a study"):
        study.start(ROOT, tmp_path / "w", 1, [])


def _fake_gate(calls, stop_at=None):
    def run(repo, base, head, **kwargs):
        calls.append(head)
        if stop_at is not None and len(calls) == stop_at:
            raise KeyboardInterrupt  # the study is stopped here
        report = gate.Report()
        report.rows.append(
            gate.Row(
                "bench_x.X.track_forward",
                ("'manual'", "'128x100'"),
                "instructions",
                "instructions",
                1.0,
                1.0,
                1.0,
                1.03,
                False,
            )  # fmt: skip
        )
        return gate.GateRun(base, head, report, 0.0, 0, [])

    return run


def test_a_stopped_study_goes_on_where_it_stopped(tmp_path, monkeypatch):
    workdir = tmp_path / "w"
    record = study.Study(workdir)
    workdir.mkdir()
    plan = study.noops(2) + [CATALOGUE["py-backward-x1.2"], CATALOGUE["py-precision-x4"]]
    commits = {"base": "0" * 40, **{c.name: f"{i:040d}" for i, c in enumerate(plan, 1)}}
    from dataclasses import asdict

    record.save({"plan": [asdict(c) for c in plan], "commits": commits, "runs": [], "factors": {}})
    monkeypatch.setattr(study, "measure_factors", lambda *a: None)
    calls = []
    monkeypatch.setattr(gate, "run", _fake_gate(calls, stop_at=4))
    with pytest.raises(KeyboardInterrupt):
        study.run(workdir, runs=3, echo=lambda line: None)
    saved = json.loads(record.path.read_text())
    # no-ops and injections in turn: a study stopped early has both
    assert [(r["run"], r["change"]) for r in saved["runs"]] == [
        (1, "noop-1"),
        (1, "py-backward-x1.2"),
        (1, "noop-2"),
    ]
    monkeypatch.setattr(gate, "run", _fake_gate(calls))
    data = study.run(workdir, runs=3, echo=lambda line: None)
    # no-ops and the deterministic precision injection once, the timed slowdown every run
    assert [(r["run"], r["change"]) for r in data["runs"][3:]] == [
        (1, "py-precision-x4"),
        (2, "py-backward-x1.2"),
        (3, "py-backward-x1.2"),
    ]
    assert calls[4:] == [commits["py-precision-x4"]] + [commits["py-backward-x1.2"]] * 2


def test_only_runs_the_named_changes_and_refuses_unknown_ones(tmp_path, monkeypatch):
    workdir = tmp_path / "w"
    workdir.mkdir()
    plan = study.noops(2) + [CATALOGUE["py-backward-x1.2"], CATALOGUE["py-precision-x4"]]
    commits = {"base": "0" * 40, **{c.name: f"{i:040d}" for i, c in enumerate(plan, 1)}}
    from dataclasses import asdict

    study.Study(workdir).save(
        {"plan": [asdict(c) for c in plan], "commits": commits, "runs": [], "factors": {}}
    )
    monkeypatch.setattr(study, "measure_factors", lambda *a: None)
    calls = []
    monkeypatch.setattr(gate, "run", _fake_gate(calls))
    with pytest.raises(UsageError, match="--only: noop-9 not in the study"):
        study.run(workdir, runs=2, echo=lambda line: None, only=["noop-9"])
    assert calls == []
    data = study.run(workdir, runs=2, echo=lambda line: None, only=["py-backward-x1.2", "noop-2"])
    assert [(r["run"], r["change"]) for r in data["runs"]] == [
        (1, "py-backward-x1.2"),
        (1, "noop-2"),
        (2, "py-backward-x1.2"),
    ]
    data = study.run(workdir, runs=2, echo=lambda line: None)  # then the rest
    assert [(r["run"], r["change"]) for r in data["runs"][3:]] == [
        (1, "noop-1"),
        (1, "py-precision-x4"),
    ]


def _data():
    plan = study.noops(2) + [CATALOGUE["cpp-native-x1.2"]]
    from dataclasses import asdict

    def row(ratio, family="time", size="1024x1000", method="time_forward"):
        return {
            "benchmark": f"bench_time.TimeSoftmaxLoss.{method}",
            "params": ["'manual'", f"'{size}'", "'float32'", "'cpu'"],
            "family": family,
            "unit": "seconds",
            "before": 1.0,
            "after": ratio,
            "ratio": ratio,
            "threshold": 1.1,
            "regressed": False,
            "note": "",
        }

    def paired_record(ratio, confirm, p):
        label = "bench_time.TimeSoftmaxLoss.time_forward('manual', '1024x1000', 'float32', 'cpu')"
        return {"label": label, "skipped": None, "error": None, "screen": [ratio] * 8,
                "confirm": confirm, "p": p, "regressed": False}  # fmt: skip

    runs = [
        {"run": 1, "change": "noop-1", "rows": [row(1.01)], "failures": [],
         "paired": [paired_record(1.01, [], None)]},
        {"run": 1, "change": "noop-2", "rows": [row(1.05)], "failures": [],
         "paired": [paired_record(1.05, [1.05] * 16, 1e-5)]},
        {"run": 1, "change": "cpp-native-x1.2", "rows": [row(1.2)], "failures": [],
         "paired": [paired_record(1.2, [1.2] * 16, 1e-5)]},
        {"run": 2, "change": "cpp-native-x1.2", "rows": [row(1.08)], "failures": [],
         "paired": [paired_record(1.08, [1.08] * 16, 1e-5)]},
    ]  # fmt: skip
    return {
        "plan": [asdict(c) for c in plan],
        "commits": {},
        "runs": runs,
        "factors": {"cpp-native-x1.2": {"x('manual', '1024x1000')": [1.19, 1.21, 1.2]}},
    }


def test_the_table_is_decided_again_at_other_thresholds():
    data = _data()
    header, lines = study.table(data, study.evaluate(data))
    assert header[:4] == ["change", "size", "native time", "instr. factor"]
    time_col = header.index("time")
    noop = lines[0]
    assert noop[:2] == ["no-op (2 commits)", "all"] and noop[time_col] == "0/2"
    at_1024 = next(line for line in lines[1:] if line[1] == "1024x1000")
    assert at_1024[2] == "1.200" and at_1024[time_col] == "1/2"
    lower = study.evaluate(data, {"time": 1.04})
    _, lines = study.table(data, lower)
    assert lines[0][time_col] == "1/2"  # the 1.05 no-op is a false alarm at 1.04
    assert next(line for line in lines[1:] if line[1] == "1024x1000")[time_col] == "2/2"
    spread = study.same_code_spread(lower)
    assert spread["time"]["max"] == 1.05 and spread["time"]["n"] == 2


def test_a_change_is_judged_at_its_target_regions_and_timed_class():
    sweep = CATALOGUE["cpp-memory-sweep"]  # time_forward and track_forward of bench_time

    def row(benchmark, family):
        return {"benchmark": benchmark, "method": benchmark.rsplit(".", 1)[1], "family": family}

    cycles = "bench_instructions.CacheSoftmaxLoss.track_cycles_forward"
    assert study._targets(sweep, row(cycles, "cycles"))
    assert study._targets(sweep, row(cycles.replace("cycles", "ll_misses"), "cycles"))
    assert not study._targets(sweep, row(cycles + "_backward", "cycles"))
    assert study._targets(sweep, row("bench_time.TimeSoftmaxLoss.time_forward", "time"))
    assert not study._targets(sweep, row("bench_threads.TimeThreads.time_forward", "time"))
    serial = CATALOGUE["cpp-serial"]  # timed by bench_threads
    assert study._targets(serial, row("bench_threads.TimeThreads.time_backward", "time"))
    assert not study._targets(serial, row("bench_time.TimeSoftmaxLoss.time_backward", "time"))
    # the bf16-only extra pass: its dtype's timings only, never the float32 instruction counts
    bf16 = CATALOGUE["cpp-bf16-extra-pass"]
    timed = "bench_time.TimeSoftmaxLoss.time_forward"
    params = ["'manual'", "'1024x1000'", "'bfloat16'", "'cpu'"]
    assert study._targets(bf16, {**row(timed, "time"), "params": params})
    assert not study._targets(
        bf16, {**row(timed, "time"), "params": [p.replace("bfloat16", "float32") for p in params]}
    )
    instr = "bench_instructions.InstructionsSoftmaxLoss.track_forward"
    assert not study._targets(
        bf16, {**row(instr, "instructions"), "params": ["'manual'", "'1024x1000'", "'float32'"]}
    )


def test_the_paired_spread_of_the_noops_by_class_and_size():
    header, lines = study.paired_spread(_data())
    assert header[:2] == ["timed class", "size"]
    # the two no-ops' one combination each; the injection's records are not no-ops
    assert lines == [
        ["bench_time.TimeSoftmaxLoss", "1024x1000", "2", "1.010-1.050", "1", "1.050", "0"]
    ]


def test_a_new_timing_rule_gets_comparisons_of_its_own_and_keeps_the_earlier_ones(
    tmp_path, monkeypatch
):
    """Records without a rule are the one-pair rule's; the study gates every change again
    under today's rule, the table shows today's rule only, the earlier one gets a line."""
    data = _data()
    data["runs"][1]["rows"][0]["regressed"] = True  # noop-2: a false alarm of the old rule
    data["commits"] = {"base": "0" * 40, "noop-1": "1" * 40, "noop-2": "2" * 40,
                       "cpp-native-x1.2": "3" * 40}  # fmt: skip
    workdir = tmp_path / "w"
    workdir.mkdir()
    study.Study(workdir).save(data)
    monkeypatch.setattr(study, "measure_factors", lambda *a: None)
    calls = []
    monkeypatch.setattr(gate, "run", _fake_gate(calls))
    new = study.run(workdir, runs=1, echo=lambda line: None)
    rule = paired.Settings().rule
    assert [(r["run"], r["change"], r.get("rule")) for r in new["runs"][4:]] == [
        (1, "noop-1", rule),
        (1, "cpp-native-x1.2", rule),
        (1, "noop-2", rule),
    ]
    assert len(study.under_rule(new, rule)["runs"]) == 3
    assert study.earlier_rules(new, rule) == [
        f"earlier rule ({study.RULE_ONE_PAIR}): 4 comparisons on record, not in the table; "
        "no-ops: 1 of 2 with a false alarm"
    ]
    gated = len(calls)
    again = study.run(workdir, runs=1, echo=lambda line: None)
    assert len(calls) == gated and len(again["runs"]) == 7  # done: nothing gated again


def test_every_confirm_worker_pair_must_show_the_regression():
    data = _data()
    record = data["runs"][2]["paired"][0]  # cpp-native-x1.2, run 1
    record["confirm_groups"] = [[1.2] * 6, [1.2] * 6, [1.02] * 6]
    record["confirm"] = [r for g in record["confirm_groups"] for r in g]
    at_1024 = [r for r in study.evaluate(data) if r["change"] == "cpp-native-x1.2"]
    assert [r["regressed"] for r in at_1024] == [False, False]  # one pair read 1.02
    record["confirm_groups"][2] = [1.15] * 6
    at_1024 = [r for r in study.evaluate(data) if r["change"] == "cpp-native-x1.2"]
    assert [r["regressed"] for r in at_1024] == [True, False]
