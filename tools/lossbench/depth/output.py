"""Output of the depth experiment: the CSV, the plot and the short text table."""

from __future__ import annotations

import csv
import math

from lossbench import tables
from lossbench.depth.measure import twin_pairs


def columns(impl_names) -> list[str]:
    cols = ["dtype", "logit_scale", "depth", "layer", "kind", "back"]
    for a, b in twin_pairs(impl_names):
        cols += [f"{a}_vs_{b}_rel", f"{a}_vs_{b}_eps"]
    for name in impl_names:
        cols += [f"{name}_vs_exact_rel", f"{name}_vs_exact_eps"]
    return cols


def write_csv(path, rows, cols) -> None:
    """Every row; ``inf`` is written as ``inf`` (CSV holds it), a skipped impl as empty."""
    with open(path, "x", newline="") as f:  # never overwrites a result
        writer = csv.DictWriter(f, fieldnames=cols, extrasaction="raise")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: ("" if row.get(c) is None else _csv_value(row[c])) for c in cols})


def _csv_value(v):
    return repr(v) if isinstance(v, float) else v


def plot_panels(impl_names) -> list[tuple[str, str]]:
    """(column, title) of each panel: every twin pair, then each hand-written impl vs exact."""
    panels = [(f"{a}_vs_{b}_eps", f"{a} vs {b}") for a, b in twin_pairs(impl_names)]
    panels += [(f"{n}_vs_exact_eps", f"{n} vs exact") for n in impl_names if "manual" in n]
    return panels


def write_plot(path, rows, impl_names, title="") -> None:
    """Difference (eps, log scale) vs layers back from the loss; one line per depth.

    Non-finite values (NaN/inf gradients) are drawn as crosses along the top edge of the
    panel, values of exactly 0 at a floor of 1e-3 eps; a panel whose values are all 0 says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = plot_panels(impl_names)
    dtypes = list(dict.fromkeys(r["dtype"] for r in rows))
    depths = sorted({r["depth"] for r in rows})
    floor = 1e-3
    fig, axes = plt.subplots(
        len(dtypes),
        len(panels),
        figsize=(3.6 * len(panels), 2.9 * len(dtypes)),
        squeeze=False,
        sharex=True,
    )
    cmap = plt.get_cmap("viridis")
    notes = set()
    for i, dtype in enumerate(dtypes):
        for j, (col, name) in enumerate(panels):
            ax = axes[i][j]
            top = ax.get_xaxis_transform()  # x in data, y in axes coordinates
            lines = []
            for k, depth in enumerate(depths):
                sel = sorted(
                    (r for r in rows if r["dtype"] == dtype and r["depth"] == depth),
                    key=lambda r: r["back"],
                )
                pts = [(r["back"], r.get(col)) for r in sel if r.get(col) is not None]
                if pts:
                    lines.append((depth, cmap(k / max(len(depths) - 1, 1)), pts))
            values = [v for _, _, pts in lines for _, v in pts]
            ax.set_yscale("log")
            message = None
            if values and all(v == 0 for v in values):
                message = "0 at every layer and depth\n(bitwise identical)"
            elif values and not any(math.isfinite(v) for v in values):
                message = "NaN/inf at every layer and depth"
            elif not values:
                message = "not measured"
            for depth, color, pts in lines:
                xs = [x for x, _ in pts]
                ys = [max(v, floor) if math.isfinite(v) else math.nan for _, v in pts]
                label = f"d={depth}"
                if message is None:
                    ax.plot(xs, ys, marker="o", ms=3, lw=1.5, color=color, label=label)
                    if any(v == 0 for _, v in pts):
                        notes.add(f"0 drawn at {floor:g} eps")
                else:
                    ax.plot([], [], marker="o", ms=3, lw=1.5, color=color, label=label)
                bad = [x for x, v in pts if not math.isfinite(v)]
                if bad:
                    ax.plot(bad, [0.95] * len(bad), "x", ms=5, color=color, transform=top)
                    notes.add("x on the top edge = non-finite (NaN/inf) gradient")
            if message is not None:
                ax.set_ylim(1e-1, 1e1)
                ax.text(
                    0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9
                )
            ax.grid(True, which="major", alpha=0.3)
            ax.set_title(f"{name} ({dtype})", fontsize=9)
            if j == 0:
                ax.set_ylabel("max|g-h| / max|g*|  (eps)", fontsize=8)
            if i == len(dtypes) - 1:
                ax.set_xlabel("layers back from the loss (0 = logits)", fontsize=8)
            ax.tick_params(labelsize=7)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        axes[0][0].legend(handles, labels, fontsize=7, title="hidden layers", title_fontsize=7)
    note = "; ".join(sorted(notes))
    fig.suptitle("\n".join(s for s in (title, note) if s), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return "inf"
    return f"{v:.3g}"


def format_table(rows, impl_names) -> str:
    """Short table, in eps: logits, output layer and first layer of each depth."""
    pairs = [f"{a}_vs_{b}_eps" for a, b in twin_pairs(impl_names)]
    impls = [f"{n}_vs_exact_eps" for n in impl_names]
    heads = [c[: -len("_eps")].replace("_vs_", "~").replace("naive_", "n.") for c in pairs]
    heads += [c[: -len("_vs_exact_eps")].replace("naive_", "n.") for c in impls]
    tables_ = []
    for dtype in dict.fromkeys(r["dtype"] for r in rows):
        sel = [r for r in rows if r["dtype"] == dtype]
        body = []
        for depth in dict.fromkeys(r["depth"] for r in sel):
            shown = {"logits": "logits", str(depth + 1): "output", "1": "first"}
            body += [
                [str(depth), shown[r["layer"]], *(_fmt(r.get(c)) for c in pairs + impls)]
                for r in sel
                if r["depth"] == depth and r["layer"] in shown
            ]
        title = (
            f"{dtype}, logit scale {sel[0]['logit_scale']:g}: gradient differences in eps "
            "(A~B: twin impls; others: vs exact)"
        )
        header = ["depth", "layer", *heads]
        tables_.append(tables.render(header, body, title=title, right=range(len(header))))
    return "\n\n".join(tables_)
