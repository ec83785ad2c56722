"""What each measured block of the docs renders, from the records in ``docs/measurements/``.

``RENDERERS[name](records, **args)`` returns the block's text: one line for a figure inside a
sentence, or a table whose first line states its conditions (``Conditions: ...``), once,
from its records: what was measured, the machine and its load, torch, the commit and the
date, the command. Every ratio is a time (or memory) over a reference's, lower is better,
as everywhere in the docs.

Only the standard library and the records: rendering and checking the docs needs no torch.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Callable

from lossbench import tables


class RenderError(ValueError):
    """A block names no renderer, a record it needs is missing, or an argument is wrong."""


# ----------------------------------------------------------------------------- formatting


def num(value) -> float:
    """A record's number (non-finite ones are stored as strings: ``"inf"``)."""
    return float(value)


def ms(seconds) -> str:
    s = num(seconds)
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def ratio(value) -> str:
    return f"{num(value):.2f}x"


def eps(value) -> str:
    v = num(value)
    if not math.isfinite(v):
        return "overflow (inf)"
    return f"{v:.2f}" if v < 100 else f"{v:.3g}"


def seconds(value) -> str:
    v = num(value)
    if v < 60:
        return f"{v:.1f} s"
    return f"{v:,.0f} s ({int(v // 60)} min {round(v % 60):d} s)"


def span(values, fmt) -> str:
    lo, hi = fmt(min(values)), fmt(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def code(text: str) -> str:
    return f"`{text}`"


def _shown_command(record: dict) -> str:
    """The command as a reader would type it again: the variables it ran with first, without
    ``--record PATH``."""
    env = [f"{k}={v}" for k, v in record.get("environment", {}).items()]
    words = env + shlex.split(record["command"])
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
            continue
        if w == "--record":
            skip = True
            continue
        out.append(w)
    return shlex.join(out)


# ----------------------------------------------------------------------------- conditions


def _one_or_all(values) -> str:
    seen = list(dict.fromkeys(v for v in values if v))
    return ", ".join(seen) if seen else "not recorded"


def conditions(records: list[dict], what: str, *, dated: bool = True) -> str:
    """One line: what was measured, then the shared conditions of ``records``. ``dated=False``
    for the README, which states no date: its commit names the day, and its record keeps it."""
    imported = [r for r in records if "imported" in r]
    if imported:
        return _imported_conditions(imported, what)
    machines = [
        f"{r['machine']['cpu']} ({r['machine']['vector_isa']}), {r['machine']['cores']} cores"
        for r in records
    ]
    loads = [r["load"]["before"][0] for r in records if r["load"]["before"]]
    load = span(loads, lambda v: f"{v:.1f}") if loads else "not recorded"
    commits = []
    for r in records:
        short = (r.get("commit") or "unknown")[:7]
        commits.append(short + (" with local changes" if r.get("changed") else ""))
    day = f", {_one_or_all(r['date'][:10] for r in records)}" if dated else ""
    commands = ", ".join(code(_shown_command(r)) for r in records)
    return (
        f"Conditions: {what}; {_one_or_all(machines)}, load {load}; "
        f"torch {_one_or_all(r['torch'] for r in records)}; commit {_one_or_all(commits)}{day}; "
        f"by {commands}."
    )


def _imported_conditions(records: list[dict], what: str) -> str:
    parts = []
    for r in records:
        m, src = r["machine"], r["imported"]
        cpu = ", ".join(str(v) for v in (m.get("cpu"), m.get("vector_isa")) if v)
        cores = f", {m['cores']} cores" if m.get("cores") else ""
        parts.append(
            f"{r['date']}; {cpu or 'CPU not recorded'}{cores}; {r['load']}; torch {r['torch']}; "
            + (f"{r['note']}; " if r.get("note") else "")
            + f"by {code(r['command'])}. Imported from {code(src['path'])} as committed in "
            f"{src['commit'][:7]} (lines {src['lines'][0]}-{src['lines'][1]}): not measured again"
        )
    return f"Conditions: {what}; " + " / ".join(parts) + "."


def table(header, rows, title: str) -> str:
    return title + "\n\n" + tables.render(header, rows, markdown=True)


def _need(records: dict, name: str) -> dict:
    try:
        return records[name]
    except KeyError:
        raise RenderError(f"no record docs/measurements/{name}.json") from None


# ----------------------------------------------------------------------------- speed, memory

HEADLINE_IMPLS = ("torch", "manual", "fused", "fused_inplace", "autograd", "naive_manual")


def _ratios_case(record: dict, dtype: str) -> dict:
    for case in record["result"]:
        if case["dtype"] == dtype:
            return case
    raise RenderError(f"{record['command']}: no {dtype} case")


def _time_vs_torch(case: dict, name: str) -> str:
    t, base = case["seconds"].get(name), case["seconds"].get("torch")
    if not t or not base:
        return "cannot run"
    return ratio(num(t["total"]) / num(base["total"]))


def _peak(case: dict, name: str) -> str:
    value = case["peak_extra_buffers"].get(name)
    return "-" if value is None else f"{num(value):.2f}"


def headline(records: dict) -> str:
    speed, prec, large = (_need(records, n) for n in ("ratios", "compare", "compare-x100"))
    case = _ratios_case(speed, "float32")
    rows = []
    for name in HEADLINE_IMPLS:
        t = case["seconds"].get(name)
        rows.append(
            [
                code(name),
                ms(t["total"]) if t else "cannot run",
                _time_vs_torch(case, name),
                _peak(case, name),
                eps(prec["result"]["grad_error_eps"][name]),
                eps(large["result"]["grad_error_eps"][name]),
            ]
        )
    rows_, cols = case["shape"]
    what = (
        f"float32 {rows_}x{cols} logits (the seed's), forward+backward, {case['threads']} "
        f"threads, median of {case['repeats']} interleaved runs; error against the exact "
        "gradient, the logits as drawn and times 100"
    )
    header = [
        "implementation",
        "forward+backward",
        "time vs `F.cross_entropy` (lower is better)",
        "peak extra memory (logits buffers)",
        "gradient error (eps)",
        "gradient error, logits ×100 (eps)",
    ]
    return table(header, rows, conditions([speed, prec, large], what, dated=False))


def ratios(records: dict, dtype: str = "float32", record: str = "ratios") -> str:
    rec = _need(records, record)
    case = _ratios_case(rec, dtype)
    rows = []
    for name, t in case["seconds"].items():
        if t is None:
            rows.append([code(name), "cannot run", "", "", "", _peak(case, name)])
            continue
        rows.append(
            [code(name), ms(t["forward"]), ms(t["backward"]), ms(t["total"])]
            + [_time_vs_torch(case, name), _peak(case, name)]
        )
    r, c = case["shape"]
    what = (
        f"{dtype} {r}x{c} logits, {case['threads']} threads, median of {case['repeats']} "
        "interleaved runs; peak extra memory in a fresh process"
    )
    header = ["implementation", "forward", "backward", "forward+backward"]
    header += ["time vs `F.cross_entropy` (lower is better)", "peak extra memory (logits buffers)"]
    return table(header, rows, conditions([rec], what))


def overhead(records: dict, record: str = "overhead") -> str:
    rec = _need(records, record)
    res = rec["result"]
    rounds = res["rounds"]
    base, direct = res["baseline"], res["direct"]
    sizes = list(rounds[0])
    names = [n for n in rounds[0][sizes[0]]["seconds"] if n != base]
    header = ["implementation", *sizes]
    rows = [[f"{code('F.cross_entropy')} behind the checks ({code(base)}), time"]]
    for size in sizes:
        rows[0].append(span([num(r[size]["seconds"][base]) for r in rounds], ms))
    for name in names:
        label = f"{code('F.cross_entropy')} called directly" if name == direct else code(name)
        row = [label]
        for size in sizes:
            vals = [r[size]["seconds"][name] for r in rounds]
            if any(isinstance(v, str) for v in vals):
                row.append("cannot run")
                continue
            bases = [num(r[size]["seconds"][base]) for r in rounds]
            row.append(span([num(v) / b for v, b in zip(vals, bases, strict=True)], ratio))
        rows.append(row)
    small = res["small_calls"].split(" (")[0].split(" softmaxloss")[0]
    what = (
        f"forward+backward time over the registry's {code(base)} entry (lower is better), "
        f"{res['dtype']}, {res['threads']} thread{'' if res['threads'] == 1 else 's'}, the "
        f"range over {len(rounds)} rounds of "
        f"interleaved medians; small CPU calls by the {small}"
    )
    return table(header, rows, conditions([rec], what))


# ----------------------------------------------------------------------------- precision


def compare(records: dict, record: str = "compare") -> str:
    rec = _need(records, record)
    res = rec["result"]
    cfg = res["config"]
    rows = []
    for name, loss in res["loss"].items():
        rows.append(
            [code(name), f"{num(loss):.17g}" if math.isfinite(num(loss)) else str(loss)]
            + [eps(res["loss_error_eps"][name]), eps(res["grad_error_eps"][name])]
            + [ms(res["seconds"][name]["forward"]), ms(res["seconds"][name]["backward"])]
        )
    rows += [[code(n), f"failed: {e}", "", "", "", ""] for n, e in res["errors"].items()]
    scale = "" if num(cfg["scale"]) == 1 else f", logits times {num(cfg['scale']):g}"
    what = (
        f"{cfg['dtype']} {cfg['size']}x{cfg['classes']} standard-normal logits{scale}, seed "
        f"{cfg['seed']}, {cfg['threads']} threads, median of {cfg['repeats']}; exact loss "
        f"{num(res['reference_loss']):.17g}"
    )
    header = ["implementation", "loss", "loss error (eps)", "gradient error (eps)"]
    header += ["forward", "backward"]
    return table(header, rows, conditions([rec], what))


def seed(records: dict) -> str:
    """The seed's two figures beside ours: the L1 distance of the manual and autograd
    gradients, and the backward time of manual over autograd's (lower is better)."""
    src, here, here64 = (_need(records, n) for n in ("seed", "compare", "compare-float64"))
    ours = {"float32": here["result"], "float64": here64["result"]}
    theirs = src["result"]["values"]
    l1 = ["L1 distance, manual vs autograd gradient"]
    bwd = ["backward time, manual / autograd (lower is better)"]
    for dtype in ("float32", "float64"):
        res = ours[dtype]
        sec = res["seconds"]
        l1 += [theirs[f"l1_{dtype}"], f"{num(res['grad_l1_distance']):.3g}"]
        m, a = (
            num(theirs[f"manual_{dtype}"].split()[0]),
            num(theirs[f"autograd_{dtype}"].split()[0]),
        )
        bwd += [
            f"{theirs[f'manual_{dtype}']} / {theirs[f'autograd_{dtype}']} ({ratio(m / a)})",
            f"{ms(sec['manual']['backward'])} / {ms(sec['autograd']['backward'])} "
            f"({ratio(num(sec['manual']['backward']) / num(sec['autograd']['backward']))})",
        ]
    rows = [l1, bwd]
    title = (
        conditions([here, here64], '3200x3200, "here"')
        + f" The seed's figures are those of its README on its own machine and PyTorch, "
        f"as {code(src['imported']['path'])} quoted them in {src['imported']['commit'][:7]}."
    )
    header = ["", "seed float32", "here float32", "seed float64", "here float64"]
    return table(header, rows, title)


# ----------------------------------------------------------------------------- depth


def _depth_rows(rec: dict) -> list[dict]:
    return rec["result"]["rows"]


DEPTH_IMPLS = ("naive_manual", "manual", "autograd", "fused", "torch")


def depth(records: dict, record: str = "depth") -> str:
    """The depth command's short table (logits, output and first layer of each depth), by
    dtype, for the twins and the main implementations against the exact gradient."""
    rec = _need(records, record)
    rows = _depth_rows(rec)
    pairs = [k[: -len("_eps")] for k in rows[0] if k.endswith("_eps") and "_exact_" not in k]
    shown = [n for n in DEPTH_IMPLS if f"{n}_vs_exact_eps" in rows[0]]
    header = ["dtype", "depth", "layer"]
    header += [p.replace("_vs_", " ~ ") for p in pairs]
    header += [f"{n} vs exact" for n in shown]
    body = []
    order = {d: i for i, d in enumerate(dict.fromkeys(r["dtype"] for r in rows))}
    for r in sorted(rows, key=lambda r: (order[r["dtype"]], r["depth"])):
        names = {"logits": "logits", str(r["depth"] + 1): "output", "1": "first"}
        if r["layer"] not in names:
            continue
        cells = [r.get(f"{p}_eps") for p in pairs] + [r.get(f"{n}_vs_exact_eps") for n in shown]
        body.append(
            [r["dtype"], str(r["depth"]), names[r["layer"]]]
            + ["-" if v is None else _g(v) for v in cells]
        )
    what = f"{rec['result']['title']}; in eps, twins (a ~ b) and against the exact gradient"
    return table(header, body, conditions([rec], what))


def _g(value) -> str:
    v = num(value)
    return "inf" if not math.isfinite(v) else f"{v:.3g}"


def depth_summary(records: dict) -> str:
    """Per dtype: the twins' difference and the stable implementations' error, at the logits
    and at the layers, over every depth (the answer to the depth question)."""
    rec = _need(records, "depth")
    rows = _depth_rows(rec)
    stable = [n for n in ("manual", "autograd", "fused", "torch") if f"{n}_vs_exact_eps" in rows[0]]
    measures = [
        ("naive_manual ~ naive_autograd", ["naive_manual_vs_naive_autograd_eps"]),
        ("manual ~ autograd", ["manual_vs_autograd_eps"]),
        ("stable implementations vs exact", [f"{n}_vs_exact_eps" for n in stable]),
    ]
    body = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        for label, cols in measures:
            cells = []
            for at_logits in (True, False):
                vals = [
                    num(r[c])
                    for r in rows
                    if r["dtype"] == dtype and (r["layer"] == "logits") == at_logits
                    for c in cols
                    if r.get(c) is not None
                ]
                finite = [v for v in vals if math.isfinite(v)]
                text = span(finite, _g) if finite else "-"
                if len(finite) < len(vals):
                    text += f" ({len(vals) - len(finite)} inf)"
                cells.append(text)
            body.append([dtype, label, *cells])
    depths = sorted({r["depth"] for r in rows})
    what = (
        f"{rec['result']['title']}; depths {', '.join(map(str, depths))}; ranges in eps over "
        "every depth"
    )
    header = ["dtype", "difference", "at the logits", "at the layers"]
    return table(header, body, conditions([rec], what))


# ----------------------------------------------------------------------------- timed commands


def _timed(records: dict, name: str) -> dict:
    rec = _need(records, name)
    if "wall_seconds" not in rec["result"]:
        raise RenderError(f"docs/measurements/{name}.json is not a timed command's record")
    return rec


def wall(records: dict, record: str) -> str:
    """One figure: the wall time of a timed command."""
    return seconds(_timed(records, record)["result"]["wall_seconds"])


PYTEST_SUMMARY = re.compile(r"=+ (?P<counts>.*?) in (?P<seconds>[\d.]+)s")


def pytest_counts(records: dict, record: str = "fast-tests") -> str:
    """pytest's counts of a timed test run (``3,664 passed, 52 skipped``)."""
    for line in reversed(_timed(records, record)["result"]["tail"]):
        m = PYTEST_SUMMARY.search(line)
        if m:
            counts = re.sub(r"(\d+)", lambda d: f"{int(d[1]):,}", m["counts"])
            return ", ".join(p for p in counts.split(", ") if "warning" not in p)
    raise RenderError(f"{record}: no pytest summary line in its output")


def runtimes(records: dict) -> str:
    """The timed commands of one measurement run, one row each."""
    names = [n for n in ("fast-tests", "build-ext", "gate-docs-only") if n in records]
    recs = [_timed(records, n) for n in names]
    rows = []
    for name, rec in zip(names, recs, strict=True):
        res = rec["result"]
        what = pytest_counts(records, name) if name == "fast-tests" else "exit 0"
        load = rec["load"]["before"][0] if rec["load"]["before"] else "-"
        label = re.fullmatch(r"(?P<cmd>.*?)(?: \((?P<note>.*)\))?", res["label"])
        shown = code(label["cmd"]) + (f" ({label['note']})" if label["note"] else "")
        rows.append([shown, seconds(res["wall_seconds"]), what, str(load)])
    header = ["command", "wall time", "result", "load (1-minute average)"]
    return table(header, rows, conditions(recs, "wall time of each command"))


def gate_output(records: dict) -> str:
    """The last lines ``make gate`` printed on a documentation-only commit, with conditions."""
    rec = _timed(records, "gate-docs-only")
    lines = [s for s in rec["result"]["tail"] if not s.startswith(("make", "PYTHONPATH"))]
    lines = [s for s in lines if s.startswith(("gate", "HEAD", "no regression"))] or lines
    what = (
        f"{code('make gate BASE=HEAD~1')} in a clone of the commit below, on one more commit "
        "that changes README.md only"
    )
    return conditions([rec], what) + "\n\n```\n" + "\n".join(lines) + "\n```"


# ----------------------------------------------------------------------------- the gate's study


def _imported_table(records: dict, name: str) -> tuple[dict, list[str], list[list[str]]]:
    rec = _need(records, name)
    res = rec["result"]
    if "header" not in res:
        raise RenderError(f"docs/measurements/{name}.json holds no table")
    return rec, res["header"], res["rows"]


STUDY_COLUMNS = ("change", "size", "instr. factor", "instructions", "cycles", "memory")
STUDY_COLUMNS += ("precision", "time", "gate (any)")


def gate_study(records: dict, record: str = "gate-study") -> str:
    """The study's table (``detection-power --evaluate --markdown``) without its column of
    native factors (measured with too few pairs: ``gate-factors`` holds them), and without
    the changes it did not gate, which it names."""
    rec, header, rows = _imported_table(records, record)
    keep = [header.index(c) for c in STUDY_COLUMNS if c in header]
    shown, left_out = [], []
    for row in rows:
        if all(row[i] == "-" for i in keep[2:]):
            left_out.append(row[0])
            continue
        shown.append([row[i] for i in keep])
    what = "the regression gate's detection study, every cell the runs that flagged it / the runs"
    text = table([header[i] for i in keep], shown, conditions([rec], what))
    if left_out:
        text += "\n\nNot gated in this study: " + "; ".join(dict.fromkeys(left_out)) + "."
    return text


def gate_factors(records: dict) -> str:
    rec, header, rows = _imported_table(records, "gate-factors")
    keep = [i for i, h in enumerate(header) if not h.startswith("before")]
    what = "each injection's native time factor (HEAD / BASE, lower is better), median of 3 "
    what += "fresh worker pairs of 16 pairs"
    body = [[re.sub(r"\*\*(.*?)\*\*", r"\1", row[i]) for i in keep] for row in rows]
    return table([header[i] for i in keep], body, conditions([rec], what))


PACKAGE_RUNS = (
    ("quiet_1202", "first study, nothing else running"),
    ("busy_1202", "first study, beside other jobs"),
    ("quiet_1203", "second study, nothing else running"),
)


def gate_package(records: dict) -> str:
    """The whole-selection gate's wall time on a commit that changes the package."""
    rec = _need(records, "gate-package")
    values = rec["result"]["values"]
    rows = []
    for key, label in PACKAGE_RUNS:
        text = values[key]
        if key == "quiet_1203" and "median_1203" in values:
            text += f" ({values['median_1203']})"
        rows.append([label, text])
    what = "the gate on the whole selection, on commits that change the package"
    return table(["runs", "wall time of one gate"], rows, conditions([rec], what))


def _seconds_in(text: str) -> list[int]:
    """The second counts of a figure such as ``462, 650, 518 s`` or ``395-484 s``."""
    return [int(v.replace(",", "")) for v in re.findall(r"\d[\d,]*\d|\d", text)]


def gate_package_span(records: dict) -> str:
    """One figure: the span of whole-selection gate times with the machine to itself."""
    values = _need(records, "gate-package")["result"]["values"]
    vals = _seconds_in(values["quiet_1202"]) + _seconds_in(values["quiet_1203"])
    return f"{min(vals)}-{max(vals)} s"


def ci_runs(records: dict) -> str:
    """``.ci/run``'s wall time, by CI and on clean clones (imported)."""
    rec = _need(records, "ci-runs")
    values = rec["result"]["values"]
    rows = []
    for key, text in values.items():
        if key.endswith("_fast") or key == "target":
            continue
        where, commit = key.split("_")
        label = "CI's own figure" if where == "ci" else "a clean clone, nothing else running"
        rows.append([label, commit, text, values.get(f"{key}_fast", "-")])
    what = f"{code('bash .ci/run')}: the fast suite, the slow tests two at once, lint"
    header = ["run", "commit", "wall time", "of which"]
    return table(header, rows, conditions([rec], what))


def _study_rows(records: dict, record: str) -> tuple[list[str], list[list[str]]]:
    _, header, rows = _imported_table(records, record)
    return header, rows


def _runs(cell: str) -> tuple[int, int]:
    caught, _, runs = cell.strip("*").partition("/")
    return int(caught), int(runs)


def gate_noops(records: dict) -> str:
    """One figure: the no-op commits of both studies and the false alarms among them."""
    alarms = runs = 0
    for record in ("gate-study", "gate-study-quiet"):
        header, rows = _study_rows(records, record)
        any_ = header.index("gate (any)")
        for row in rows:
            if row[0].startswith("no-op"):
                a, n = _runs(row[any_])
                alarms, runs = alarms + a, runs + n
    word = "false alarm" if alarms == 1 else "false alarms"
    return f"{alarms} {word} in {runs} no-op commits"


def gate_smallest(records: dict) -> str:
    """One figure: the smallest native slowdown the timings caught in every run, and the runs."""
    header, rows = _study_rows(records, "gate-study-quiet")
    time_col, size_col = header.index("time"), header.index("size")
    _, fheader, frows = _imported_table(records, "gate-factors")
    best = None
    for row in rows:
        if row[0].startswith("no-op") or row[time_col] == "-":
            continue
        caught, runs = _runs(row[time_col])
        if caught != runs:
            continue
        key = next((r for r in frows if _injection_matches(r[0], row[0])), None)
        if key is None or row[size_col] not in fheader:
            continue
        factor = num(key[fheader.index(row[size_col])].strip("*"))
        if best is None or factor < best[0]:
            best = (factor, caught, runs, row[size_col])
    if best is None:
        raise RenderError("no injection caught by the timings in every run")
    factor, caught, runs, _ = best
    unseen = "that instruction counts cannot see"
    return f"a native {ratio(factor)} slowdown {unseen} in {caught}/{runs} runs"


def _injection_matches(factor_label: str, change: str) -> bool:
    """The factors table names injections (``cpp-native-x1.1``), the study describes them
    (every 6th row / every 3rd row)."""
    label = factor_label.strip("`").split("`")[0]
    if "every 6th" in change:
        return label == "cpp-native-x1.1"
    if "every 3rd" in change:
        return label == "cpp-native-x1.2"
    return False


# ----------------------------------------------------------------------------- imported figures


def imported_value(records: dict, record: str, key: str) -> str:
    """One figure of an imported record, as its source wrote it."""
    rec = _need(records, record)
    try:
        return " ".join(rec["result"]["values"][key].split())
    except KeyError:
        raise RenderError(f"docs/measurements/{record}.json has no value {key!r}") from None


def imported_table(records: dict, record: str, what: str = "") -> str:
    """An imported table as committed (bold marks dropped), under its conditions."""
    rec, header, rows = _imported_table(records, record)
    body = [[re.sub(r"\*\*(.*?)\*\*", r"\1", c) for c in row] for row in rows]
    return table(header, body, conditions([rec], what.replace("_", " ") or record))


def bench_cold(records: dict) -> str:
    rec = _need(records, "bench-cold")
    v = {k: " ".join(t.split()) for k, t in rec["result"]["values"].items()}
    rows = [[code("make bench"), v["wall"], v["cpu"], v["rss"]]]
    what = "the main grid on a fresh clone, with empty caches and HOME"
    header = ["command", "wall time", "CPU time", "peak resident memory"]
    return table(header, rows, conditions([rec], what))


def gate_settings(records: dict) -> str:
    """The gate's thresholds and the paired timings' rule, from the code's defaults: settings,
    not measurements, rendered so that the page and the code cannot disagree."""
    from lossbench import gate, paired  # the gate's modules import no torch

    s = paired.Settings()
    rows = [
        [code(family), f"{code(f'--threshold {family}={limit:g}')}"]
        for family, limit in gate.DEFAULT_THRESHOLDS.items()
        if family in gate.FAMILIES
    ]
    rule = (
        f"Timings: a screen of {s.pairs[0]} pairs in one worker pair ({s.early} when their "
        f"median is plainly below the bar), a suspect above {ratio(s.screen)}; a confirm stage "
        f"of {s.confirm_workers} fresh worker pairs of {s.pairs[1]} pairs, each median above "
        f"the time threshold, and a sign test at {s.alpha:g} / (the number of suspects)."
    )
    title = (
        f"The defaults in the code ({code('lossbench.gate.DEFAULT_THRESHOLDS')}, "
        f"{code('lossbench.paired.Settings')}): settings, not measurements."
    )
    return table(["family", "threshold (HEAD / BASE above it: a regression)"], rows, title) + (
        "\n\n" + rule
    )


RENDERERS: dict[str, Callable[..., str]] = {
    "headline": headline,
    "ratios": ratios,
    "overhead": overhead,
    "compare": compare,
    "seed": seed,
    "depth": depth,
    "depth-summary": depth_summary,
    "wall": wall,
    "pytest-counts": pytest_counts,
    "runtimes": runtimes,
    "gate-output": gate_output,
    "gate-study": gate_study,
    "gate-factors": gate_factors,
    "gate-package": gate_package,
    "gate-noops": gate_noops,
    "gate-smallest": gate_smallest,
    "gate-package-span": gate_package_span,
    "ci-runs": ci_runs,
    "imported-value": imported_value,
    "imported-table": imported_table,
    "bench-cold": bench_cold,
    "gate-settings": gate_settings,
}


def render(name: str, records: dict, args: dict[str, str]) -> str:
    try:
        fn = RENDERERS[name]
    except KeyError:
        raise RenderError(f"no renderer {name!r}; known: {', '.join(RENDERERS)}") from None
    try:
        return fn(records, **args)
    except TypeError as exc:
        raise RenderError(f"measured:{name}: {exc}") from None
    except (KeyError, IndexError, ValueError) as exc:
        raise RenderError(
            f"measured:{name}: its records do not hold what it needs: {exc!r}"
        ) from None
