"""The site's front page answers: which implementation is fastest, which is most precise?

Reads the asv results (``results_dir``, with asv's own ``asv.results`` API) and injects a
section at the top of the published ``index.html`` front page (asv's benchmark grid): one
table for the ``time_`` benchmarks (fastest implementation) and one for the ``track_``
benchmarks with unit ``eps`` (most precise), one row per combination of the other params
(size, dtype, device, ...) and one column per series: the latest commit measured for each
environment (machine + torch version from the asv matrix). Each row links to the
benchmark's graph page restricted to that combination, where every implementation is drawn
over the commits and the torch-version series can be selected in the left panel.

Rules: smaller is better for both (times; errors in eps). Precision ties are common (the
package records ``max(error, 1)``), so every implementation at the minimum is named.
Values asv could not measure (skipped, failed) are left out of the ranking.

Run after ``asv publish`` (which recreates ``index.html``) and before ``offline_site``.
Command: ``python -m lossbench site-summary [--config asv.conf.json | --results-dir R
--html-dir H]``
"""

from __future__ import annotations

import html
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from lossbench.errors import ToolError
from lossbench.results import load_benchmarks

BEGIN, END = "<!-- softmaxloss-summary -->", "<!-- /softmaxloss-summary -->"
ANCHOR = '<div id="summarygrid-display"'


class SummaryError(ToolError):
    """A one-line reason the summary could not be built."""


@dataclass
class Row:
    benchmark: str
    unit: str
    params: dict[str, str]  # the non-impl params of this row (asv repr strings)
    cells: list[dict[str, float]] = field(default_factory=list)  # per series: impl -> value

    def link(self) -> str:
        query = "&".join(
            f"p-{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.params.items()
        )
        return f"#{self.benchmark}" + (f"?{query}" if query else "")


@dataclass
class Summary:
    series: list[str]
    commits: list[str]
    fastest: list[Row]
    precise: list[Row]


def _unrepr(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else value


def _latest_per_series(results_dir: Path):
    from asv import results as asv_results

    latest: dict[tuple[str, str], object] = {}
    for res in asv_results.iter_results(str(results_dir)):
        key = (res.params.get("machine", ""), res.env_name)
        old = latest.get(key)
        if old is None or (res.date or 0) > (old.date or 0):
            latest[key] = res
    if not latest:
        raise SummaryError(f"no asv results under {results_dir}: run the benchmarks first")
    ordered = [latest[k] for k in sorted(latest)]
    # Label each series by the environment params that differ between series (torch, ...).
    keys = sorted({k for r in ordered for k in r.params})
    varying = [k for k in keys if len({str(r.params.get(k)) for r in ordered}) > 1]
    labels = [
        ", ".join(f"{k} {r.params.get(k, '-')}" for k in varying) or "latest results"
        for r in ordered
    ]
    return ordered, labels


def summarize(results_dir: Path, impl_param: str = "impl") -> Summary:
    """Builds the two rankings from the latest result of each series."""
    results_dir = Path(results_dir)
    meta_path = results_dir / "benchmarks.json"
    if not meta_path.is_file():
        raise SummaryError(f"{meta_path} not found: run the benchmarks first")
    meta = load_benchmarks(results_dir)
    series, labels = _latest_per_series(results_dir)
    fastest, precise = [], []
    for name in sorted(meta):
        bench = meta[name]
        names = bench.get("param_names") or []
        if impl_param not in names:
            continue
        if bench.get("type") == "time":
            target = fastest
        elif bench.get("type") == "track" and bench.get("unit") == "eps":
            target = precise
        else:
            continue
        impl_idx = names.index(impl_param)
        others = [i for i in range(len(names)) if i != impl_idx]
        rows: dict[tuple, Row] = {}
        for combo in itertools.product(*(bench["params"][i] for i in others)):
            rows[combo] = Row(
                name,
                bench.get("unit", ""),
                {names[i]: v for i, v in zip(others, combo, strict=True)},
            )
            rows[combo].cells = [{} for _ in series]
        for s, res in enumerate(series):
            if name not in res.get_result_keys(meta):
                continue
            values = res.get_result_value(name, bench["params"])
            for point, value in zip(itertools.product(*bench["params"]), values, strict=True):
                if value is None or not math.isfinite(value):
                    continue
                combo = tuple(point[i] for i in others)
                rows[combo].cells[s][_unrepr(point[impl_idx])] = float(value)
        target.extend(r for r in rows.values() if any(r.cells))
    commits = [res.commit_hash[:8] for res in series]
    return Summary(labels, commits, fastest, precise)


def _fmt(value: float, unit: str) -> str:
    if unit == "eps":
        if value <= 1.0:
            return "≤ 1 eps"
        return f"{value:.3g} eps"
    from asv import util

    return util.human_value(value, unit)


def ranking(cell: dict[str, float]) -> tuple[list[str], float, str | None, float | None]:
    """(winners, best value, runner-up, its value): ties at the minimum are all winners."""
    if not cell:
        return [], math.nan, None, None
    best = min(cell.values())
    winners = sorted(k for k, v in cell.items() if v == best)
    rest = sorted((v, k) for k, v in cell.items() if v != best)
    return winners, best, (rest[0][1] if rest else None), (rest[0][0] if rest else None)


def _cell_html(cell: dict[str, float], unit: str) -> str:
    winners, best, second, second_value = ranking(cell)
    if not winners:
        return '<td class="text-muted">n/a</td>'
    out = f"<b>{html.escape(', '.join(winners))}</b> {html.escape(_fmt(best, unit))}"
    if second is not None:
        ratio = second_value / best if best > 0 else math.inf
        out += (
            f'<br><small class="text-muted">next: {html.escape(second)} '
            f"{html.escape(_fmt(second_value, unit))} (×{ratio:.3g})</small>"
        )
    full = "; ".join(f"{k} {_fmt(v, unit)}" for k, v in sorted(cell.items(), key=lambda kv: kv[1]))
    return f'<td title="{html.escape(full)}">{out}</td>'


def _table_html(title: str, question: str, rows: list[Row], summary: Summary) -> str:
    head = "".join(
        f"<th>{html.escape(s)}<br><small>commit {html.escape(c)}</small></th>"
        for s, c in zip(summary.series, summary.commits, strict=True)
    )
    parts = [f'<h3>{html.escape(title)}</h3><p class="text-muted">{question}</p>']
    if not rows:
        parts.append("<p><i>No such benchmark with an <code>impl</code> parameter yet.</i></p>")
        return "".join(parts)
    parts.append(
        '<table class="table table-condensed table-striped table-bordered softmaxloss-summary"'
        ' style="width: auto">'
        f"<thead><tr><th>benchmark</th><th>case</th>{head}</tr></thead><tbody>"
    )
    for row in rows:
        bench = row.benchmark.split(".", 1)[-1]
        case = ", ".join(f"{k}={_unrepr(v)}" for k, v in row.params.items())
        cells = "".join(_cell_html(cell, row.unit) for cell in row.cells)
        parts.append(
            f'<tr><td><a href="{html.escape(row.link())}">{html.escape(bench)}</a></td>'
            f"<td>{html.escape(case)}</td>{cells}</tr>"
        )
    parts.append("</tbody></table>")
    return "".join(parts)


def render(summary: Summary) -> str:
    return (
        f'{BEGIN}<div id="softmaxloss-summary" class="container-fluid" '
        'style="padding: 10px 20px 0 20px">'
        "<h2>softmaxloss: which implementation is fastest, which is most precise?</h2>"
        "<p>Latest measured commit of each series (column). Smaller is better in both tables; "
        "hover a cell for the full ranking, click a benchmark for its graph over commits "
        "with every implementation. On a graph page the left panel selects the series "
        "(e.g. the torch version) and the parameters.</p>"
        + _table_html("Fastest", "Time per call (asv <code>time_</code> benchmarks).",
                      summary.fastest, summary)
        + _table_html("Most precise",
                      "Error versus the exact reference, in units of the dtype's eps "
                      "(asv <code>track_</code> benchmarks, unit <code>eps</code>; "
                      "recorded as max(error, 1), non-finite capped at 1e12).",
                      summary.precise, summary)
        + f"<h2>All benchmarks</h2></div>{END}"
    )  # fmt: skip


def inject(index_html: Path, block: str) -> None:
    """Puts ``block`` first inside asv's grid container (shown on the front page only)."""
    text = index_html.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start != -1 and end != -1:
        text = text[:start] + text[end + len(END) :]
    at = text.find(ANCHOR)
    if at == -1:
        raise SummaryError(f"{index_html} has no {ANCHOR}...>: not an asv 0.6 front page")
    at = text.index(">", at) + 1
    index_html.write_text(text[:at] + block + text[at:], encoding="utf-8")


def text_table(summary: Summary) -> str:
    lines = []
    for title, rows in (("fastest", summary.fastest), ("most precise", summary.precise)):
        lines.append(f"{title}: " + " | ".join(summary.series))
        for row in rows:
            case = ", ".join(f"{k}={_unrepr(v)}" for k, v in row.params.items())
            cells = []
            for cell in row.cells:
                winners, best, _, _ = ranking(cell)
                cells.append(f"{','.join(winners)} {_fmt(best, row.unit)}" if winners else "n/a")
            lines.append(f"  {row.benchmark.split('.', 1)[-1]} [{case}]: " + " | ".join(cells))
    return "\n".join(lines)
