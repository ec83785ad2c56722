"""The checked merge of shard results (lossbench.merge) on synthetic asv result files.

The files are written in asv 0.6.6's results format by hand; asv's own reader
(``asv.results.Results.load`` and ``get_result_keys``) confirms they are what asv reads and
which results asv would silently drop, the thing each check exists to catch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from asv.results import Results, get_filename

from lossbench import merge
from lossbench.merge import MergeError

ROOT = Path(__file__).resolve().parents[1]

ENV = "virtualenv-py3.11-torch2.13.0"
MACHINE = {
    "arch": "x86_64",
    "cpu": "AMD EPYC 7763 64-Core Processor",
    "machine": "ci-cpu",
    "num_cpu": "4",
    "os": "Linux 6.8.0",
    "ram": "16372024",
    "version": 1,
}
COLUMNS = ["result", "params", "version", "started_at", "duration"]
BENCH = {
    "bench_time.T.time_forward": {
        "name": "bench_time.T.time_forward",
        "params": [["'manual'", "'torch'"]],
        "param_names": ["impl"],
        "type": "time",
        "unit": "seconds",
        "version": "v-time-1",
    },
    "bench_precision.P.track_grad_error": {
        "name": "bench_precision.P.track_grad_error",
        "params": [["'manual'", "'torch'"]],
        "param_names": ["impl"],
        "type": "track",
        "unit": "eps",
        "version": "v-prec-1",
    },
    "version": 2,
}


def commit(i: int) -> str:
    return f"{i:02x}" * 20


def write_shard(
    root: Path,
    commits: list[int],
    *,
    bench: dict | None = None,
    machine: dict | None = None,
    version_of: dict | None = None,
    value: float = 1.0,
    params_patch: dict | None = None,
) -> dict[str, Path]:
    """An asv results folder: benchmarks.json, <machine>/machine.json, one file per commit."""
    bench = json.loads(json.dumps(BENCH if bench is None else bench))
    machine = dict(MACHINE if machine is None else machine)
    root.mkdir(parents=True, exist_ok=True)
    (root / "benchmarks.json").write_text(json.dumps(bench, indent=4))
    (root / machine["machine"]).mkdir(exist_ok=True)
    (root / machine["machine"] / "machine.json").write_text(json.dumps(machine, indent=4))
    written = {}
    for c in commits:
        params = {k: v for k, v in machine.items() if k != "version"}
        params.update({"python": "3.11", "torch": "2.13.0"})
        params.update(params_patch or {})
        results = {}
        for name, meta in bench.items():
            if name == "version":
                continue
            version = (version_of or {}).get(name, meta["version"])
            results[name] = [[value + c, float("nan")], [["'manual'", "'torch'"]], version, 0, 1.0]
        data = {
            "commit_hash": commit(c),
            "env_name": ENV,
            "date": 1_700_000_000_000 + c,
            "params": params,
            "python": "3.11",
            "requirements": {"torch": "2.13.0"},
            "env_vars": {},
            "result_columns": COLUMNS,
            "results": results,
            "durations": {},
            "version": 2,
        }
        rel = get_filename(machine["machine"], commit(c), ENV)
        (root / rel).write_text(json.dumps(data))
        written[rel] = root / rel
    return written


def tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def asv_keys(path: Path, bench_json: Path) -> list[str]:
    """The benchmarks asv itself would graph from one result file."""
    benchmarks = json.loads(bench_json.read_text())
    benchmarks.pop("version")
    return sorted(Results.load(str(path)).get_result_keys(benchmarks))


def expect_error(store: Path, shards: list[Path], *parts: str, **kw) -> str:
    before = tree(store)
    with pytest.raises(MergeError) as info:
        merge.merge(store, shards, **kw)
    message = str(info.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    assert tree(store) == before  # nothing written
    return message


def test_fixture_files_are_what_asv_reads(tmp_path):
    files = write_shard(tmp_path / "s", [1])
    (path,) = files.values()
    assert asv_keys(path, tmp_path / "s" / "benchmarks.json") == sorted(
        k for k in BENCH if k != "version"
    )


def test_clean_merge_of_round_robin_shards_into_empty_store(tmp_path):
    s0 = write_shard(tmp_path / "s0", [1, 3, 5])
    s1 = write_shard(tmp_path / "s1", [2, 4])
    store = tmp_path / "store"
    plan = merge.merge(store, [tmp_path / "s0", tmp_path / "s1"])
    assert (len(plan.new), len(plan.update), len(plan.same)) == (5, 0, 0)
    got = tree(store)
    assert set(got) == {*s0, *s1, "benchmarks.json", "ci-cpu/machine.json"}
    for rel, src in {**s0, **s1}.items():
        assert got[rel] == src.read_bytes()
    assert got["benchmarks.json"] == (tmp_path / "s0" / "benchmarks.json").read_bytes()
    # Merging the same shards again: everything is already stored, nothing changes.
    again = merge.merge(store, [tmp_path / "s0", tmp_path / "s1"])
    assert (len(again.new), len(again.update), len(again.same)) == (0, 0, 5)
    assert tree(store) == got


def test_result_version_not_matching_benchmarks_json_is_refused(tmp_path):
    files = write_shard(tmp_path / "s0", [1], version_of={"bench_time.T.time_forward": "v-old"})
    write_shard(tmp_path / "s1", [2])
    (rel,) = files
    # asv would silently drop that benchmark from this file:
    assert asv_keys(files[rel], tmp_path / "s0" / "benchmarks.json") == [
        "bench_precision.P.track_grad_error"
    ]
    msg = expect_error(
        tmp_path / "store",
        [tmp_path / "s0", tmp_path / "s1"],
        str(files[rel]),
        "bench_time.T.time_forward",
        "'v-old'",
        "'v-time-1'",
    )
    assert msg.endswith("(asv would drop it)")


def test_benchmark_missing_from_benchmarks_json_is_refused(tmp_path):
    bench = json.loads(json.dumps(BENCH))
    files = write_shard(tmp_path / "s0", [1], bench=bench)
    (rel,) = files
    data = json.loads(files[rel].read_text())
    data["results"]["bench_gone.G.time_x"] = [[1.0], [["'a'"]], "v", 0, 1.0]
    files[rel].write_text(json.dumps(data))
    expect_error(tmp_path / "store", [tmp_path / "s0"], "bench_gone.G.time_x", "not in")


def test_shards_with_different_benchmark_code_are_refused(tmp_path):
    other = json.loads(json.dumps(BENCH))
    other["bench_precision.P.track_grad_error"]["version"] = "v-prec-2"
    write_shard(tmp_path / "s0", [1])
    write_shard(tmp_path / "s1", [2], bench=other)
    expect_error(
        tmp_path / "store",
        [tmp_path / "s0", tmp_path / "s1"],
        str(tmp_path / "s1" / "benchmarks.json"),
        "bench_precision.P.track_grad_error",
        "'v-prec-2'",
        "different benchmark code",
    )
    fewer = json.loads(json.dumps(BENCH))
    del fewer["bench_time.T.time_forward"]
    write_shard(tmp_path / "s2", [3], bench=fewer)
    expect_error(
        tmp_path / "store",
        [tmp_path / "s0", tmp_path / "s2"],
        "lacks bench_time.T.time_forward",
    )


def test_stored_history_with_other_versions_needs_explicit_acceptance(tmp_path):
    store = tmp_path / "store"
    write_shard(store, [1])
    newer = json.loads(json.dumps(BENCH))
    newer["bench_time.T.time_forward"]["version"] = "v-time-2"
    write_shard(tmp_path / "s0", [2], bench=newer)
    expect_error(
        store,
        [tmp_path / "s0"],
        str(store / "benchmarks.json"),
        "bench_time.T.time_forward",
        "'v-time-1'",
        "'v-time-2'",
        "stop graphing",
    )
    plan = merge.merge(store, [tmp_path / "s0"], accept_new_versions=True)
    assert plan.changed_versions == ["bench_time.T.time_forward"]
    stored = json.loads((store / "benchmarks.json").read_text())
    assert stored["bench_time.T.time_forward"]["version"] == "v-time-2"


def test_machine_identity_must_match_across_shards_and_store(tmp_path):
    write_shard(tmp_path / "s0", [1])
    other_cpu = {**MACHINE, "cpu": "Intel(R) Xeon(R) Platinum 8370C CPU @ 2.80GHz"}
    write_shard(tmp_path / "s1", [2], machine=other_cpu)
    msg = expect_error(
        tmp_path / "store",
        [tmp_path / "s0", tmp_path / "s1"],
        str(tmp_path / "s1" / "ci-cpu" / "machine.json"),
        "cpu",
        str(tmp_path / "s0" / "ci-cpu" / "machine.json"),
        "graph would split",
    )
    assert "Xeon" in msg
    # Against the stored history: the store's machine file is the reference.
    store = tmp_path / "store2"
    write_shard(store, [5], machine={**MACHINE, "num_cpu": "2"})
    expect_error(store, [tmp_path / "s0"], "num_cpu", "'4'", "'2'")


def test_result_params_must_repeat_the_machine_file(tmp_path):
    files = write_shard(tmp_path / "s0", [1], params_patch={"ram": "999"})
    (rel,) = files
    expect_error(tmp_path / "store", [tmp_path / "s0"], str(files[rel]), "ram", "'999'")


def test_two_shards_writing_the_same_file_differently_are_refused(tmp_path):
    write_shard(tmp_path / "s0", [1, 2])
    write_shard(tmp_path / "s1", [2, 3], value=5.0)
    rel = get_filename("ci-cpu", commit(2), ENV)
    expect_error(
        tmp_path / "store",
        [tmp_path / "s0", tmp_path / "s1"],
        rel,
        str(tmp_path / "s0"),
        str(tmp_path / "s1"),
        "different content",
    )
    # Byte-identical copies (the same file handed back twice) merge to one.
    write_shard(tmp_path / "s2", [2])
    plan = merge.merge(tmp_path / "store", [tmp_path / "s0", tmp_path / "s2"])
    assert sorted(plan.new) == sorted([rel, get_filename("ci-cpu", commit(1), ENV)])


def test_stored_file_is_only_replaced_by_a_superset(tmp_path):
    store = tmp_path / "store"
    stored = write_shard(store, [1])
    (rel,) = stored
    old = json.loads(stored[rel].read_text())
    # A shard that started from the stored file and added a benchmark's results: accepted.
    bench = json.loads(json.dumps(BENCH))
    bench["bench_time.T.time_backward"] = {**bench["bench_time.T.time_forward"], "version": "vb"}
    grown = write_shard(tmp_path / "s0", [1], bench=bench)
    data = json.loads(grown[rel].read_text())
    for name, row in old["results"].items():
        data["results"][name] = row
    grown[rel].write_text(json.dumps(data))
    plan = merge.plan_merge(store, [tmp_path / "s0"])
    assert list(plan.update) == [rel] and not plan.new
    # A shard that measured the same commit afresh (other values): refused.
    write_shard(tmp_path / "s1", [1], value=7.0)
    expect_error(store, [tmp_path / "s1"], str(store / rel), "would be replaced", "s1")
    merge.apply_merge(plan)
    assert json.loads((store / rel).read_text())["results"].keys() == data["results"].keys()


def test_unexpected_files_and_missing_machine_file_are_refused(tmp_path):
    write_shard(tmp_path / "s0", [1])
    (tmp_path / "s0" / "notes.txt").write_text("x")
    expect_error(tmp_path / "store", [tmp_path / "s0"], "notes.txt", "unexpected file")
    write_shard(tmp_path / "s1", [1])
    (tmp_path / "s1" / "ci-cpu" / "machine.json").unlink()
    expect_error(tmp_path / "store", [tmp_path / "s1"], "no machine.json")
    (tmp_path / "s2").mkdir()
    expect_error(tmp_path / "store", [tmp_path / "s2"], "no benchmarks.json")
    expect_error(tmp_path / "store", [tmp_path / "nope"], "no such folder")


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "lossbench", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
    )


def test_merge_results_command_one_line_error_and_nothing_written(tmp_path):
    store = tmp_path / "store"
    write_shard(store, [9])
    write_shard(tmp_path / "s0", [1])
    write_shard(tmp_path / "s1", [1], value=3.0)
    before = tree(store)
    proc = run_cli("merge-results", "--into", store, tmp_path / "s0", tmp_path / "s1")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "merge-results: error:" in lines[0], proc.stderr
    assert "different content" in lines[0] and "Traceback" not in proc.stderr
    assert tree(store) == before

    proc = run_cli("merge-results", "--check", "--into", store, tmp_path / "s0")
    assert proc.returncode == 0, proc.stderr
    assert "would merge 1 shards" in proc.stdout and "1 new result files" in proc.stdout
    assert tree(store) == before
    proc = run_cli("merge-results", "--into", store, tmp_path / "s0")
    assert proc.returncode == 0, proc.stderr
    assert set(tree(store)) == set(before) | {get_filename("ci-cpu", commit(1), ENV)}
