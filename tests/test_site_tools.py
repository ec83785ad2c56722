"""Fast checks of the site tools on small hand-written asv result files (no browser, no asv run).

The inputs are asv's on-disk formats (results v2, benchmarks.json); the expected rankings
are computed here from the same numbers, independently of ``lossbench.site_summary``.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from lossbench import offline_site, site_summary
from lossbench.commands import main

IMPLS = ["fused", "manual", "torch"]
DTYPES = ["float32", "float64"]
TIME, TRACK = "bench_x.Loss.time_forward", "bench_x.Loss.track_grad_error"
PARAMS = [[repr(i) for i in IMPLS], [repr(d) for d in DTYPES]]
# (torch version) -> benchmark -> (impl, dtype) -> value; None = skipped.
DATA = {
    "2.13.0": {
        TIME: {("fused", "float32"): 3e-3, ("manual", "float32"): 2e-3, ("torch", "float32"): 1e-3,
               ("fused", "float64"): 4e-3, ("manual", "float64"): 5e-3, ("torch", "float64"): None},
        TRACK: {("fused", "float32"): 1.0, ("manual", "float32"): 30.0, ("torch", "float32"): 1.0,
                ("fused", "float64"): 2.5, ("manual", "float64"): 1.5, ("torch", "float64"): 9.0},
    },
    "2.14.1": {
        TIME: {("fused", "float32"): 1e-3, ("manual", "float32"): 2e-3, ("torch", "float32"): 4e-3,
               ("fused", "float64"): 4e-3, ("manual", "float64"): 3e-3, ("torch", "float64"): 8e-3},
        TRACK: {("fused", "float32"): 7.0, ("manual", "float32"): 1.0, ("torch", "float32"): 1e12,
                ("fused", "float64"): 1.0, ("manual", "float64"): 1.0, ("torch", "float64"): 1.0},
    },
}  # fmt: skip


def _write_results(results: Path) -> None:
    meta = {"version": 2}
    for name, kind, unit in ((TIME, "time", "seconds"), (TRACK, "track", "eps")):
        meta[name] = {"name": name, "type": kind, "unit": unit, "params": PARAMS,
                      "param_names": ["impl", "dtype"], "version": "v1"}  # fmt: skip
    results.mkdir(parents=True)
    (results / "benchmarks.json").write_text(json.dumps(meta))
    (results / "m1").mkdir()
    (results / "m1" / "machine.json").write_text(json.dumps({"machine": "m1", "version": 1}))
    for n, (torch_version, benches) in enumerate(DATA.items()):
        env = f"virtualenv-py3.11-torch{torch_version}"
        for commit, date in (("a" * 40, 1000), ("b" * 40, 2000)):  # the later commit counts
            scale = 1.0 if commit[0] == "b" else 100.0
            res = {
                name: [
                    [None if v is None else v * scale for v in (
                        values[(i, d)] for i, d in itertools.product(IMPLS, DTYPES))],
                    PARAMS, "v1",
                ]
                for name, values in benches.items()
            }  # fmt: skip
            doc = {"commit_hash": commit, "env_name": env, "date": date + n,
                   "params": {"machine": "m1", "python": "3.11", "torch": torch_version},
                   "python": "3.11", "requirements": {"torch": torch_version}, "env_vars": {},
                   "result_columns": ["result", "params", "version"], "results": res,
                   "durations": {}, "version": 2}  # fmt: skip
            (results / "m1" / f"{commit[:8]}-{env}.json").write_text(json.dumps(doc))


def _expected(torch_version: str, bench: str, dtype: str) -> set[str]:
    vals = {
        i: v for (i, d), v in DATA[torch_version][bench].items() if d == dtype and v is not None
    }
    return {i for i, v in vals.items() if v == min(vals.values())}


def test_summary_ranks_each_torch_series_at_its_latest_commit(tmp_path):
    _write_results(tmp_path / "results")
    summary = site_summary.summarize(tmp_path / "results")
    assert summary.series == ["torch 2.13.0", "torch 2.14.1"]
    assert summary.commits == ["bbbbbbbb", "bbbbbbbb"]
    for rows, bench in ((summary.fastest, TIME), (summary.precise, TRACK)):
        assert [r.params["dtype"] for r in rows] == ["'float32'", "'float64'"]
        for row in rows:
            dtype = row.params["dtype"].strip("'")
            for s, torch_version in enumerate(summary.series):
                winners, best, _, _ = site_summary.ranking(row.cells[s])
                assert set(winners) == _expected(torch_version.split()[1], bench, dtype)
            assert row.link() == f"#{bench}?p-dtype=%27{dtype}%27"


def test_summary_injected_once_into_front_page(tmp_path):
    _write_results(tmp_path / "results")
    index = tmp_path / "index.html"
    index.write_text('<body><div id="summarygrid-display" style="x">\n</div></body>')
    block = site_summary.render(site_summary.summarize(tmp_path / "results"))
    site_summary.inject(index, block)
    once = index.read_text()
    site_summary.inject(index, block)
    assert index.read_text() == once and once.count('id="softmaxloss-summary"') == 1
    assert "<b>fused, manual, torch</b> ≤ 1 eps" in once  # float64 tie under torch 2.14.1


def test_summary_without_results_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "html").mkdir()
    rc = main(["site-summary", "--results-dir", str(tmp_path / "r"), "--html-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 3 and err.count("\n") == 1
    assert err.startswith("python -m lossbench site-summary: error:")


PAGE = """<html><head>
<script src="https://code.jquery.com/jquery-3.3.1.min.js" integrity="sha256-x" crossorigin="anonymous" onerror="f()"></script>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css" integrity="sha256-y" crossorigin="anonymous">
<script src="asv.js"></script></head><body><a href="https://github.com/airspeed-velocity/asv/">asv</a></body></html>
"""  # noqa: E501


@pytest.fixture
def vendor_cache(tmp_path):
    cache = tmp_path / "cache"
    vendor = cache / "asv-0.5.1-vendor"
    vendor.mkdir(parents=True)
    for name in offline_site.VENDOR_FILES:
        (vendor / name).write_text(f"/* {name} */")
    return cache


def test_offline_rewrites_cdn_urls_and_is_idempotent(tmp_path, vendor_cache):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text(PAGE)
    assert len(offline_site.external_urls(html)) == 2  # the <a> link loads nothing
    offline_site.make_offline(html, vendor_cache)
    text = (html / "index.html").read_text()
    assert '<script src="vendor/jquery-3.3.1.min.js" onerror="f()"></script>' in text
    assert '<link rel="stylesheet" href="vendor/bootstrap-3.1.0.min.css">' in text
    assert "integrity" not in text and "crossorigin" not in text
    assert offline_site.external_urls(html) == []
    assert sorted(p.name for p in (html / "vendor").iterdir()) == offline_site.VENDOR_FILES
    offline_site.make_offline(html, vendor_cache)
    assert (html / "index.html").read_text() == text


def test_offline_refuses_an_unknown_external_asset(tmp_path, vendor_cache, capsys):
    html = tmp_path / "html"
    html.mkdir()
    (html / "index.html").write_text('<script src="https://cdn.example.com/plotly.js"></script>')
    rc = main(["offline-site", "--html-dir", str(html), "--cache-dir", str(vendor_cache)])
    err = capsys.readouterr().err
    assert rc == 3
    assert err == (
        "python -m lossbench offline-site: error: index.html: no local copy known for "
        "external asset https://cdn.example.com/plotly.js\n"
    )
