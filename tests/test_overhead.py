"""``python -m lossbench overhead``: the Markdown table is made of its own measurements, an
entry that cannot run is reported as such, and bad arguments are one line."""

from __future__ import annotations

import json
import re

import pytest

from lossbench.commands import main
from softmaxloss import registry


def _cells(printed):
    rows = [line for line in printed.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in row.strip("|").split("|")] for row in rows]


def test_table_rows_are_ratios_of_the_json_numbers(tmp_path, capsys):
    out = tmp_path / "overhead.json"
    rc = main(["overhead", "--sizes", "16x5,24x7", "--budget", "0.005", "--rounds", "2",
               "--impls", "manual,fused", "--json", str(out)])  # fmt: skip
    assert rc == 0
    head, *rows = _cells(capsys.readouterr().out)
    direct = "F.cross_entropy direct"
    assert head == ["size", "`F.cross_entropy` (torch)", "`manual`", "`fused`", f"`{direct}`"]
    rounds = json.loads(out.read_text())
    assert len(rounds) == 2
    for r in rounds:
        assert set(r) == {"16x5", "24x7"}
        for case in r.values():
            assert case["repeats"] >= 5
            assert set(case["seconds"]) == {"torch", "manual", "fused", direct}
            assert all(v > 0 for v in case["seconds"].values())
    assert [row[0] for row in rows] == ["16x5", "24x7"]
    for row in rows:
        for name, cell in zip(["manual", "fused", direct], row[2:], strict=True):
            ratios = sorted(
                r[row[0]]["seconds"][name] / r[row[0]]["seconds"]["torch"] for r in rounds
            )
            shown = set(re.findall(r"\d+\.\d\dx", cell))
            assert shown == {f"{ratios[0]:.2f}x", f"{ratios[-1]:.2f}x"}, (cell, ratios)


def test_an_entry_that_raises_is_reported_not_timed(monkeypatch, capsys):
    def broken(logits, target):
        raise RuntimeError("boom")

    monkeypatch.setitem(registry.IMPLEMENTATIONS, "broken", broken)
    rc = main(["overhead", "--sizes", "8x3", "--budget", "0.002", "--impls", "broken"])
    assert rc == 0
    _, row = _cells(capsys.readouterr().out)
    assert row[2] == "cannot run"  # then the direct F column


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--sizes", "12"], r"--sizes must be ROWSxCLASSES.*'12'"),
        (["--sizes", "0x5"], r"--sizes.*'0x5'"),
        (["--sizes", "8x3,ax2"], r"--sizes.*'ax2'"),
        (["--rounds", "0"], r"--rounds"),
        (["--budget", "0"], r"--budget"),
        (["--threads", "0"], r"--threads"),
        (["--impls", "manual,nope"], r"--impls: unknown 'nope'"),
    ],
)
def test_bad_arguments_are_one_line(args, match, cli_refuses):
    cli_refuses(["overhead", *args], match)


def test_an_existing_json_file_is_never_overwritten(kept_file, cli_refuses):
    out = kept_file
    cli_refuses(["overhead", "--sizes", "8x3", "--budget", "0.002", "--json", str(out)], "exists")
    assert out.read_text() == "earlier results"
