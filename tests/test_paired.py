"""The paired timings' controller (``lossbench.paired``) with scripted workers: the ABBA
order, the two stages in separate worker pairs, the decision and its multiple-comparison
control, skips and failures. Real workers run in tests/test_gate_power.py (slow)."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from lossbench import paired

BENCH = "bench_time.TimeSoftmaxLoss.time_forward"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("ratios", [[1.2] * 8, [1.2] * 6 + [0.9] * 2, [0.9, 1.1, 1.0, 1.3]])
def test_sign_test_matches_the_binomial_tail(ratios):
    above = sum(r > 1 for r in ratios)
    n = above + sum(r < 1 for r in ratios)
    expected = stats.binomtest(above, n, 0.5, alternative="greater").pvalue
    assert paired.sign_test(ratios) == pytest.approx(expected, rel=1e-12)


def test_cases_follow_asv_selection_and_skip_the_stored_series():
    benchmarks = {
        BENCH: {"type": "time", "params": [["'manual'", "'torch'"], ["'128x100'", "'3200x3200'"]]},
        "bench_paired.PairedTimeSoftmaxLoss.time_forward": {"type": "time", "params": [["'a'"]]},
        "bench_memory.MemSoftmaxLoss.track_extra_bytes": {"type": "track", "params": [["'a'"]]},
    }
    got = paired.cases(benchmarks, r"\('manual', ")
    assert [c.label for c in got] == [
        f"{BENCH}('manual', '128x100')",
        f"{BENCH}('manual', '3200x3200')",
    ]
    assert got[0].values == ["manual", "128x100"]


class ScriptedWorker:
    """Answers like a worker: per-call times ``base * factor`` (HEAD) with a small wobble."""

    def __init__(self, name, script, log):
        self.name, self.script, self.log = name, script, log
        self.calls = 0

    def time(self, case, calls, timeout=None):
        self.log.append((self.name.split()[0], case.params[0]))
        kind, value = self.script[case.params[0]]
        if kind == "skip":
            return {"skip": "not here"}
        if kind == "error" and self.name.startswith("HEAD"):
            return {"error": "RuntimeError: boom"}
        self.calls += 1
        factor = value if self.name.startswith("HEAD") and kind == "factor" else 1.0
        wobble = 1.0 + 0.004 * ((self.calls % 3) - 1)
        return {"times": [1e-3 * factor * wobble] * calls}


def scripted_pairs(monkeypatch, tmp_path, script, worker=ScriptedWorker):
    """Every worker pair ``paired`` starts is a pair of scripted workers; returns the list of
    pairs started and the log of calls."""
    pairs, log = [], []

    class Pair:
        def __init__(self, python, trees, repo, log_path, stage, fix=True, start_timeout=300.0):
            self.base = worker(f"BASE ({stage})", script, log)
            self.head = worker(f"HEAD ({stage})", script, log)
            self.stage = stage
            pairs.append(self)

        def close(self):
            pass

    monkeypatch.setattr(paired, "_Pair", Pair)
    monkeypatch.setattr(paired, "extract_tree", lambda repo, commit, dest: tmp_path / commit)
    return pairs, log


def run(monkeypatch, tmp_path, script, settings, worker=ScriptedWorker):
    pairs, log = scripted_pairs(monkeypatch, tmp_path, script, worker)
    cases = [paired.Case(BENCH, (name,)) for name in script]
    outcomes = paired.measure(
        tmp_path, "b", "h", cases, python="python", workdir=tmp_path, settings=settings
    )
    return {o.case.params[0]: o for o in outcomes}, pairs, log


def test_suspects_are_confirmed_in_new_workers_and_decided_from_those_pairs(monkeypatch, tmp_path):
    script = {
        "'same'": ("factor", 1.0),
        "'slow'": ("factor", 1.3),
        "'border'": ("factor", 1.06),  # a suspect, below the threshold
        "'skip'": ("skip", None),
        "'broken'": ("error", None),
    }
    settings = paired.Settings(
        pairs=(4, 6), confirm_workers=2, screen=1.04, threshold=1.1, alpha=0.05
    )
    out, pairs, log = run(monkeypatch, tmp_path, script, settings)
    assert [p.stage for p in pairs] == ["screen", "confirm 1/2", "confirm 2/2"]
    assert out["'same'"].confirm_ratios == [] and not out["'same'"].regressed
    assert len(out["'slow'"].screen_ratios) == 4
    assert [len(g) for g in out["'slow'"].confirm_groups] == [6, 6]
    assert out["'slow'"].regressed and out["'slow'"].ratio == pytest.approx(1.3, rel=0.01)
    assert out["'slow'"].p_value == pytest.approx(1 / 2**12)
    border = out["'border'"]
    assert border.confirm_ratios and not border.regressed  # p is tiny, the ratio is not
    assert statistics.median(border.confirm_ratios) == pytest.approx(1.06, rel=0.01)
    assert out["'skip'"].skipped == "not here" and not out["'skip'"].screen_ratios
    assert out["'broken'"].error.startswith("HEAD") and not out["'broken'"].regressed
    # A B B A: after the warm-up and the probe, pairs alternate who goes first
    slow = [who for who, case in log if case == "'slow'"]
    assert slow[:4] == ["BASE", "BASE", "HEAD", "HEAD"]  # warm-ups and probes, BASE's sizes
    assert slow[4:12] == ["BASE", "HEAD", "HEAD", "BASE", "BASE", "HEAD", "HEAD", "BASE"]
    assert len(out["'slow'"].base_times) == len(out["'slow'"].head_times) == 4 + 6 + 6


class CyclingWorker(ScriptedWorker):
    """The same code on both sides, whose call time cycles with the process's own calls (an
    allocator that alternates fresh and reused pages: at 3200x3200 bfloat16 the gate's
    no-ops read 1.61, 1.69, 0.77, 0.95, 0.62, 1.68 in every fresh worker pair alike). One
    call per batch, as at the largest sizes."""

    CYCLE = (1.0, 1.6, 0.7, 1.3)

    def time(self, case, calls, timeout=None):
        self.log.append((self.name.split()[0], case.params[0]))
        times = []
        for _ in range(calls):
            times.append(self.CYCLE[self.calls % len(self.CYCLE)])
            self.calls += 1
        return {"times": times}


def test_both_workers_make_the_same_calls_so_a_cycling_process_reads_one(monkeypatch, tmp_path):
    settings = paired.Settings(pairs=(6, 6), confirm_workers=3, screen=1.05, threshold=1.1)
    out, _, log = run(monkeypatch, tmp_path, {"'same'": ("factor", 1.0)}, settings, CyclingWorker)
    same = out["'same'"]
    assert same.screen_ratios and set(same.screen_ratios) == {1.0}  # in step, pair by pair
    assert not same.confirm_groups and not same.regressed
    assert [who for who, _ in log[:4]] == ["BASE", "BASE", "HEAD", "HEAD"]  # warm-up, probe


class BiasedConfirmPair(ScriptedWorker):
    """The same code on both sides, but HEAD's process of the first confirm pair is
    persistently 12% slower (the detection study's noop-9: 1.112, 12 of 12 above 1)."""

    def time(self, case, calls, timeout=None):
        answer = super().time(case, calls)
        if self.name.startswith("HEAD (screen)") or self.name.startswith("HEAD (confirm 1/"):
            answer["times"] = [t * 1.12 for t in answer.get("times", [])]
        return answer


@pytest.mark.parametrize("workers", [1, 3])
def test_one_biased_worker_pair_is_no_regression_when_each_pair_must_show_it(
    monkeypatch, tmp_path, workers
):
    settings = paired.Settings(
        pairs=(6, 12 // workers), confirm_workers=workers, screen=1.05, threshold=1.1
    )
    out, _, _ = run(monkeypatch, tmp_path, {"'same'": ("factor", 1.0)}, settings, BiasedConfirmPair)
    same = out["'same'"]
    assert len(same.confirm_groups) == workers
    assert statistics.median(same.confirm_groups[0]) == pytest.approx(1.12, rel=0.01)
    # one worker pair alone: a false alarm; three: the other two read 1.0 and overrule it
    assert same.regressed == (workers == 1)
    assert [statistics.median(g) for g in same.confirm_groups[1:]] == pytest.approx(
        [1.0] * (workers - 1), rel=0.01
    )


def test_false_alarms_are_controlled_over_the_suspects(monkeypatch, tmp_path):
    """5 of 6 confirm pairs above 1: p = 7/64 = 0.109. Alone it is under alpha = 0.2;
    with a second suspect the level is 0.1, and it no longer regresses."""

    class FiveOfSix(ScriptedWorker):
        def time(self, case, calls, timeout=None):
            answer = super().time(case, calls)
            if self.name.startswith("HEAD (confirm") and self.calls == 3 + 4:
                answer["times"] = [t / 1.5 for t in answer["times"]]  # one pair below 1
            return answer

    settings = paired.Settings(
        pairs=(2, 6), confirm_workers=1, screen=1.04, threshold=1.1, alpha=0.2
    )
    alone, _, _ = run(monkeypatch, tmp_path, {"'slow'": ("factor", 1.3)}, settings, FiveOfSix)
    assert alone["'slow'"].p_value == pytest.approx(7 / 64)
    assert alone["'slow'"].regressed
    script = {"'slow'": ("factor", 1.3), "'other'": ("factor", 1.05)}
    two, _, _ = run(monkeypatch, tmp_path, script, settings, FiveOfSix)
    assert two["'other'"].confirm_ratios  # a second suspect
    assert two["'slow'"].p_value == pytest.approx(7 / 64)
    assert not two["'slow'"].regressed


def test_the_screen_stops_early_only_on_plainly_clean_cases(monkeypatch, tmp_path):
    script = {"'same'": ("factor", 1.0), "'slight'": ("factor", 1.03), "'slow'": ("factor", 1.3)}
    settings = paired.Settings(pairs=(8, 6), early=4, screen=1.04, threshold=1.1, alpha=0.05)
    out, _, _ = run(monkeypatch, tmp_path, script, settings)
    assert len(out["'same'"].screen_ratios) == 4  # median 1.00 <= 1.02: clean
    assert len(out["'slight'"].screen_ratios) == 8  # 1.03: not plainly clean, screened in full
    assert len(out["'slow'"].screen_ratios) == 8 and out["'slow'"].regressed


def test_trials_time_every_pair_in_every_fresh_worker_pair(monkeypatch, tmp_path):
    """The same-code spread and the study's native factors: ``pairs`` pairs in each of ``n``
    fresh worker pairs, none cut short (the study's factors once stopped after the screen's
    3 pairs of the 16 they claim), the median per trial near the scripted factor."""
    script = {"'same'": ("factor", 1.0), "'slow'": ("factor", 1.3)}
    pairs, _ = scripted_pairs(monkeypatch, tmp_path, script)
    cases = [paired.Case(BENCH, (name,)) for name in script]
    got = paired.trials(tmp_path, "b", "h", cases, 3, 16, python="python", workdir=tmp_path)
    assert len(pairs) == 3 and len(got) == 3
    assert all(len(o.screen_ratios) == 16 and not o.confirm_groups for t in got for o in t)
    assert paired.trial_medians(got, 0) == pytest.approx([1.0] * 3, rel=0.01)
    assert paired.trial_medians(got, 1) == pytest.approx([1.3] * 3, rel=0.01)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["paired", "HEAD", "--trials", "0"], "--trials must be a positive integer, got 0"),
        (["paired", "HEAD", "--pairs", "-1"], "--pairs must be a positive integer, got -1"),
        (["paired", "no-such-rev"], "BASE 'no-such-rev' is not a commit"),
    ],
)
def test_the_paired_command_refuses_bad_input(cli_refuses, argv, match):
    cli_refuses(argv, match)


def test_the_paired_command_never_overwrites_a_file(cli_refuses, kept_file):
    cli_refuses(["paired", "HEAD", "--json", str(kept_file)], "exists; give a new file name")
    assert kept_file.read_text() == "earlier results"


def test_store_writes_the_batch_medians_into_asvs_results(tmp_path, monkeypatch):
    """The gate's paired timings go into asv's results through asv's own API, as the
    ``bench_paired`` series: the value is the median of the batch medians, the samples are
    the batch medians, a combination not timed has no value; asv's reader reads them back."""
    from asv.machine import Machine
    from gitrepo import git

    from lossbench import results

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "asv.conf.json").write_text((ROOT / "asv.conf.json").read_text())
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "one")
    commit = git(repo, "rev-parse", "HEAD")
    monkeypatch.setenv("HOME", str(tmp_path))
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes", "--machine", "m"],
                   cwd=repo, check=True, capture_output=True)  # fmt: skip
    out = repo / ".asv" / "results"
    out.mkdir(parents=True)
    name = "bench_paired.PairedTimeSoftmaxLoss.time_forward"
    info = {"name": name, "type": "time", "unit": "seconds", "version": "v1",
            "params": [["'manual'", "'torch'"]], "param_names": ["impl"]}  # fmt: skip
    (out / "benchmarks.json").write_text(json.dumps({name: info, "version": 2}))
    Machine.load(machine_name="m", interactive=False).save(str(out))
    outcome = paired.Outcome(
        paired.Case(BENCH, ("'manual'",)), base_times=[1.0, 3.0, 2.0], head_times=[4.0, 6.0]
    )
    conf = str(repo / "asv.conf.json")
    assert paired.store(conf, "m", commit, [outcome], "base") == 1
    got = results.load_commit(out, "m", commit)
    manual, torch_ = got[name, ("'manual'",)], got[name, ("'torch'",)]
    assert (manual.value, manual.samples, manual.version) == (2.0, (1.0, 3.0, 2.0), "v1")
    assert torch_.value is None or math.isnan(torch_.value)
