"""Measurement records (``lossbench.record``): what a measuring command given ``--record``
writes, and ``python -m lossbench timed``, which records a command's wall time."""

from __future__ import annotations

import json
import sys

import pytest

from lossbench import record
from lossbench.commands import main


def _conditions(doc: dict) -> None:
    assert doc["schema"] == record.SCHEMA
    assert len(doc["commit"]) == 40 and isinstance(doc["changed"], list)
    assert doc["date"][:2] == "20" and doc["date"].endswith("+00:00")
    machine = doc["machine"]
    assert machine["cpu"] and machine["cores"] >= 1
    assert machine["vector_isa"] in ("AVX-512", "AVX2", "no AVX2", None)
    assert len(doc["load"]["before"]) == 3 and len(doc["load"]["after"]) == 3
    assert doc["torch"] and doc["python"]


def test_compare_writes_its_report_and_its_conditions(tmp_path, capsys):
    path = tmp_path / "sub" / "compare.json"
    args = ["compare", "--size", "16", "--classes", "5", "--repeats", "1", "--record", str(path)]
    assert main(args) == 0
    doc = json.loads(path.read_text())
    _conditions(doc)
    assert doc["command"] == "python -m lossbench " + " ".join(args)
    assert doc["result"]["config"]["size"] == 16
    assert set(doc["result"]["grad_error_eps"]) >= {"manual", "fused", "torch"}
    path.write_text("an earlier record")  # re-measuring replaces a record
    assert main(args) == 0
    assert json.loads(path.read_text())["result"]["config"]["classes"] == 5


def test_a_non_finite_number_is_kept_as_text():
    assert record.json_safe({"a": [float("inf"), 1.5, float("nan")]}) == {"a": ["inf", 1.5, "nan"]}


def test_the_vector_instruction_set_is_named_from_the_flags():
    assert record.vector_isa(["sse", "avx2", "avx512f"]) == "AVX-512"
    assert record.vector_isa(["sse", "avx2"]) == "AVX2"
    assert record.vector_isa(["neon"]) == "no AVX2"


def test_timed_records_wall_time_exit_status_and_last_lines(tmp_path, capsys):
    path = tmp_path / "t.json"
    code = "import os; print('one'); print(os.environ['MARK'])"
    argv = ["timed", "--record", str(path), "--env", "MARK=two", "--label", "a probe", "--"]
    assert main([*argv, sys.executable, "-c", code]) == 0
    assert "one\ntwo\n" in capsys.readouterr().out
    doc = json.loads(path.read_text())
    _conditions(doc)
    res = doc["result"]
    assert res["tail"] == ["one", "two"] and res["label"] == "a probe"
    assert res["returncode"] == 0 and res["wall_seconds"] >= 0
    assert doc["command"].startswith("python -m lossbench timed --record ")


def test_timed_records_nothing_when_the_command_fails(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("earlier")
    rc = main(["timed", "--record", str(path), "--", sys.executable, "-c", "raise SystemExit(4)"])
    assert rc == 4
    assert path.read_text() == "earlier"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--env", "NOEQUALS"], r"--env must be NAME=VALUE"),
        (["--cwd", "/nonexistent-folder"], r"--cwd .* is not a folder"),
    ],
)
def test_timed_bad_arguments_are_one_line(args, match, cli_refuses, tmp_path):
    cli_refuses(["timed", "--record", str(tmp_path / "x.json"), *args, "--", "true"], match)


def test_timed_names_no_path_of_this_machine(tmp_path, monkeypatch):
    from lossbench.commands import timed

    monkeypatch.chdir(tmp_path)
    here = str(tmp_path.resolve())
    line = f"Leaving directory '{here}'; wrote {here}/out/x.csv with {sys.prefix}/bin/python"
    shown = timed.relative(line, str(tmp_path / "sub"))
    assert here not in shown and "'.'" in shown and "wrote out/x.csv" in shown
    if sys.prefix != sys.base_prefix:
        assert sys.prefix not in shown
