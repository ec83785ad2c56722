"""Detection power of the gate: injected regressions and no-ops on a scratch history.

``python -m lossbench detection-power`` clones the repository at HEAD into a work
directory and commits, each on its own branch off HEAD (the base):

* no-ops (a README line);
* in ONE implementation (``manual`` by default), slowdowns of a nominal factor in the
  forward only and in the backward only: an extra ``torch.softmax`` over a fraction of the
  rows (whole passes first), in the forward call or in a hook that runs at the start of the
  backward; the fraction is ``(factor - 1) / c`` with ``c`` the cost of a softmax element
  relative to the implementation's own forward (1.11) or backward (1.16) element,
  measured with callgrind for ``manual`` at 1024x1000;
* precision losses: the gradient scaled by ``1 + k * eps`` (a tensor hook on the logits),
  so its normwise error grows by ~k eps;
* memory: one extra logits-sized buffer (a written copy) alive through forward+backward.

Injected code is appended to the clone's ``softmaxloss/__init__.py``, replacing the registry
entry with a wrapper. The factor actually injected is measured: the instruction-count
ratio of the injected region (deterministic), per size.

Measurement: per run, ONE asv invocation of the timings for base + no-ops (the gate's whole
selection) and ONE for base + injections (only the injected implementation's benchmarks),
each with its commits in interleaved rounds, as the gate runs them; instruction counts,
precision and memory are properties of a commit, measured in the first run only (one more
invocation per phase, as in the gate). Every result file is
kept per run and phase; the gate's decision (:func:`lossbench.gate.compare`) is
applied to base vs each commit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
from dataclasses import asdict, dataclass

from lossbench import config, gate, results, runner
from lossbench.errors import ToolError, UsageError

FACTORS = (1.05, 1.1, 1.2, 1.5, 2.0, 3.0)
PRECISION_LOSSES = (2.0, 4.0, 1000.0)
# Cost of one softmax element relative to one element of manual's forward / backward
# (callgrind, 1024x1000, manual's C++ lean path: softmax over 10% of the rows, 0.882M
# instructions, against 7.95M for the forward and 7.58M for the backward; the Python
# Functions before it gave 0.80 and 0.94).
COST_FORWARD = 1.11
COST_BACKWARD = 1.16
GIT_ID = {
    "GIT_AUTHOR_NAME": "detection-power",
    "GIT_AUTHOR_EMAIL": "detection-power@example.invalid",
    "GIT_COMMITTER_NAME": "detection-power",
    "GIT_COMMITTER_EMAIL": "detection-power@example.invalid",
}

_EXTRA_PASS = '''
import torch as _inj_torch

_inj_orig = IMPLEMENTATIONS[{impl!r}]


def _inj_extra_pass(x, fraction):
    """An extra softmax over ``fraction`` of the rows (whole passes first)."""
    rows = x.shape[0]
    work = fraction * rows
    with _inj_torch.no_grad():
        for _ in range(int(work // rows)):
            _inj_torch.softmax(x, 1)
        k = round(work % rows)
        if k:
            _inj_torch.softmax(x[:k], 1)
'''

_TEMPLATES = {
    "forward": _EXTRA_PASS
    + """

def _inj_impl(logits, target):
    _inj_extra_pass(logits.detach(), {fraction!r})
    return _inj_orig(logits, target)


IMPLEMENTATIONS[{impl!r}] = _inj_impl
""",
    "backward": _EXTRA_PASS
    + """

def _inj_impl(logits, target):
    loss = _inj_orig(logits, target)
    if loss.requires_grad:
        x = logits.detach()
        loss.register_hook(lambda grad: _inj_extra_pass(x, {fraction!r}))
    return loss


IMPLEMENTATIONS[{impl!r}] = _inj_impl
""",
    "precision": """
import torch as _inj_torch

_inj_orig = IMPLEMENTATIONS[{impl!r}]


def _inj_impl(logits, target):
    if logits.requires_grad:
        scale = 1 + {k!r} * _inj_torch.finfo(logits.dtype).eps
        logits.register_hook(lambda grad: grad * scale)
    return _inj_orig(logits, target)


IMPLEMENTATIONS[{impl!r}] = _inj_impl
""",
    "memory": """
_inj_orig = IMPLEMENTATIONS[{impl!r}]


def _inj_impl(logits, target):
    extra = logits.detach().clone()  # one more logits-sized buffer, written (resident)
    loss = _inj_orig(logits, target)
    if loss.requires_grad:
        loss.register_hook(lambda grad, extra=extra: None)  # alive until backward is done
    return loss


IMPLEMENTATIONS[{impl!r}] = _inj_impl
""",
}


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # noop, forward, backward, precision, memory
    nominal: float | None = None

    def code(self, impl: str) -> str | None:
        if self.kind == "noop":
            return None
        if self.kind in ("forward", "backward"):
            cost = COST_FORWARD if self.kind == "forward" else COST_BACKWARD
            fraction = round((self.nominal - 1) / cost, 6)
            return _TEMPLATES[self.kind].format(impl=impl, fraction=fraction)
        if self.kind == "precision":
            return _TEMPLATES["precision"].format(impl=impl, k=float(self.nominal))
        return _TEMPLATES["memory"].format(impl=impl)

    @property
    def label(self) -> str:
        if self.kind == "noop":
            return "no-op"
        if self.kind == "memory":
            return "memory: +1 logits buffer"
        if self.kind == "precision":
            return f"precision: grad error +{self.nominal:g} eps"
        return f"{self.kind} {self.nominal:g}x"


def plan(
    noops: int = 5,
    factors=FACTORS,
    precision=PRECISION_LOSSES,
    memory: bool = True,
    regions=("forward", "backward"),
) -> list[Change]:
    changes = [Change(f"noop-{i + 1}", "noop") for i in range(noops)]
    for factor in factors:
        changes += [Change(f"{r}-x{factor:g}", r, float(factor)) for r in regions]
    changes += [Change(f"precision-x{k:g}", "precision", float(k)) for k in precision]
    if memory:
        changes.append(Change("memory-buffer", "memory", None))
    return changes


def impl_subset(pattern: str, impl: str) -> str:
    """The benchmarks of ``pattern`` whose first parameter is ``impl``."""
    return rf"^(?=.*\('{re.escape(impl)}', )(?:{pattern})"


# ---- building the scratch history -------------------------------------------------------


def _git(repo: str, *args: str) -> str:
    return runner.git(repo, *args, env={**os.environ, **GIT_ID})


def build_history(source: str, dest: str, changes: list[Change], impl: str) -> dict[str, str]:
    """Clones ``source`` at HEAD into ``dest``; one commit per change, each off the base.

    Returns ``{"base": hash, change.name: hash, ...}``.
    """
    head = runner.resolve(source, "HEAD")
    _git(os.path.dirname(dest) or ".", "clone", "--quiet", "--no-local", source, dest)
    _git(dest, "checkout", "--quiet", "-B", "detection-base", head)
    commits = {"base": head}
    for change in changes:
        _git(dest, "checkout", "--quiet", "-B", change.name, head)
        code = change.code(impl)
        if code is None:
            with open(os.path.join(dest, "README.md"), "a") as f:
                f.write(f"\n<!-- {change.name}: no change to the package -->\n")
        else:
            with open(os.path.join(dest, "softmaxloss", "__init__.py"), "a") as f:
                f.write(f"\n\n# ---- detection-power study: {change.label} ----\n{code}")
        _git(dest, "commit", "--quiet", "-am", f"detection-power: {change.label}")
        commits[change.name] = _git(dest, "rev-parse", "HEAD")
    _git(dest, "checkout", "--quiet", "detection-base")
    return commits


# ---- measuring ------------------------------------------------------------------------------


@dataclass
class Settings:
    impl: str = "manual"
    runs: int = 5  # timing runs of the forward/backward injections
    noop_runs: int = 1  # runs of base + no-ops (full selection)
    pattern: str = gate.GATE_BENCH
    machine: str = "detection"
    launch_method: str | None = None


def _snapshot(results_dir: str, machine: str, dest: str) -> None:
    """Moves this invocation's result files to ``dest`` (keeps benchmarks.json there too)."""
    os.makedirs(os.path.join(dest, machine), exist_ok=True)
    shutil.copy2(os.path.join(results_dir, "benchmarks.json"), dest)
    folder = os.path.join(results_dir, machine)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name == "machine.json":
            shutil.copy2(path, os.path.join(dest, machine, name))
        elif name.endswith(".json"):
            shutil.move(path, os.path.join(dest, machine, name))


def measure(
    repo: str,
    workdir: str,
    commits: dict[str, str],
    changes: list[Change],
    settings: Settings,
    echo=None,
    first_run: int = 1,
    earlier: list[dict] | None = None,
) -> list[dict]:
    """Runs asv per run and phase; returns every phase measured (where its results lie).

    ``first_run`` > 1 adds timing runs to a study measured before (``earlier``: its phases).
    """
    home = os.path.join(workdir, "home")
    os.makedirs(home, exist_ok=True)
    env = {**os.environ, "HOME": home}
    log = os.path.join(workdir, "asv.log")
    conf = os.path.join(repo, "asv.conf.json")
    results_dir = config.results_dir(conf)
    runner.ensure_machine(settings.machine, log_path=log, env=env)
    once_part, timed_part = gate.split_selection(settings.pattern)
    subset = impl_subset(settings.pattern, settings.impl)
    once_subset, timed_subset = gate.split_selection(subset)
    common = ["--config", conf, "--machine", settings.machine, "--show-stderr"]
    if settings.launch_method:
        common += ["--launch-method", settings.launch_method]
    noops = [c for c in changes if c.kind == "noop"]
    timed = [c for c in changes if c.kind in ("forward", "backward")]
    once = [c for c in changes if c.kind in ("precision", "memory")]
    phases = list(earlier or [])
    for run in range(first_run, max(settings.runs, settings.noop_runs) + 1):
        jobs = []
        if run <= settings.noop_runs and noops:
            jobs.append(("noops", noops, once_part if run == 1 else None, timed_part, {}))
        injected = timed + (once if run == 1 else [])
        if run <= settings.runs and injected:
            first = once_subset if run == 1 else None
            only = {"SOFTMAXLOSS_INSTRUCTION_IMPLS": settings.impl}
            jobs.append(("injections", injected, first, timed_subset, only))
        for phase, members, first, rest, extra_env in jobs:
            hashes = [commits["base"]] + [commits[c.name] for c in members]
            hashfile = runner.write_hashfile(
                os.path.join(workdir, f"run{run}-{phase}.commits"), hashes
            )
            if echo:
                echo(f"detection-power: run {run}, {phase}: {len(hashes)} commits")
            invocations = []
            if first:  # instruction counts, memory, precision: first run only
                invocations.append(["run", *common, "-b", first, f"HASHFILE:{hashfile}"])
            invocations.append(
                ["run", *common, "--record-samples", "--interleave-rounds", "-b", rest]
                + [f"HASHFILE:{hashfile}"]
            )
            for args in invocations:
                rc = runner.run_asv(
                    args,
                    repo=repo,
                    log_path=log,
                    on_line=gate.progress_echo(echo),
                    env={**env, **extra_env},
                )
                if rc not in (0, 2):
                    raise ToolError(f"asv run exited {rc}; see {log}")
            dest = os.path.join(workdir, "results", f"run{run}-{phase}")
            _snapshot(results_dir, settings.machine, dest)
            phases.append(
                {"run": run, "phase": phase, "dir": dest, "changes": [c.name for c in members]}
            )
        # after every run: a study stopped later keeps its finished runs (--evaluate reads
        # them, --add-runs goes on from them)
        save_measured(workdir, commits, changes, phases)
    return phases


def save_measured(workdir: str, commits: dict, changes: list[Change], phases: list[dict]):
    with open(os.path.join(workdir, "phases.json"), "w") as f:
        json.dump(
            {"commits": commits, "phases": phases, "changes": [asdict(c) for c in changes]},
            f,
            indent=1,
        )


def load_measured(workdir: str):
    """``(commits, changes, phases)`` of a study measured earlier in ``workdir``."""
    path = os.path.join(workdir, "phases.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as exc:
        raise UsageError(f"no measured study in {workdir} ({exc.strerror})") from None
    return data["commits"], [Change(**c) for c in data["changes"]], data["phases"]


# ---- evaluating -----------------------------------------------------------------------------


def _size(params: tuple[str, ...]) -> str:
    return params[1].strip("'") if len(params) > 1 else ""


def evaluate(
    phases: list[dict],
    commits: dict[str, str],
    changes: list[Change],
    machine: str,
    thresholds: dict | None = None,
) -> list[dict]:
    """Every compared row: run, change, family, benchmark, params, ratio, regressed."""
    by_name = {c.name: c for c in changes}
    rows = []
    for phase in phases:
        base = results.load_commit(phase["dir"], machine, commits["base"])
        for name in phase["changes"]:
            after = results.load_commit(phase["dir"], machine, commits[name])
            report = gate.compare(base, after, thresholds)
            for r in report.rows:
                rows.append(
                    {
                        "run": phase["run"],
                        "change": name,
                        "kind": by_name[name].kind,
                        "family": r.family,
                        "benchmark": r.benchmark,
                        "params": list(r.params),
                        "size": _size(r.params),
                        "ratio": r.ratio,
                        "threshold": r.threshold,
                        "regressed": r.regressed,
                    }
                )
            for failed in report.failures:
                rows.append(
                    {
                        "run": phase["run"],
                        "change": name,
                        "kind": by_name[name].kind,
                        "family": "failed",
                        "benchmark": failed.benchmark,
                        "params": list(failed.params),
                        "size": _size(failed.params),
                        "ratio": None,
                        "threshold": None,
                        "regressed": True,
                    }
                )
    return rows


_REGION_BENCH = {
    "forward": "track_forward",
    "backward": "track_backward",
}


def _injected_factor(change: Change, rows: list[dict]) -> str:
    """The factor actually injected at one size, measured (see module docstring)."""

    def ratios(pred):
        return [r["ratio"] for r in rows if r["ratio"] is not None and pred(r)]

    if change.kind in _REGION_BENCH:
        name = _REGION_BENCH[change.kind]
        found = ratios(lambda r: r["family"] == "instructions" and r["benchmark"].endswith(name))
        if found:
            return f"{statistics.median(found):.3f}"
        region = f"time_{change.kind}"
        found = ratios(lambda r: r["family"] == "time" and r["benchmark"].endswith(region))
        return f"~{statistics.median(found):.2f} (time)" if found else "-"
    if change.kind == "precision":
        found = ratios(lambda r: r["benchmark"].endswith("track_grad_error"))
        return f"{max(found):.3g} (grad error, max)" if found else "-"
    if change.kind == "memory":
        found = ratios(lambda r: r["benchmark"].endswith("track_extra_bytes"))
        return f"{max(found):.3f} (extra bytes)" if found else "-"
    found = ratios(lambda r: r["family"] == "instructions")
    return f"{max(found):.4f} (max)" if found else "-"


ONCE = ("instructions", "memory", "precision")  # measured in the first run only


def _caught(rows: list[dict], family: str | None) -> str:
    """``k/n``: runs (x commits) with a regression of ``family`` / runs that compared it.

    ``family=None``: the gate's verdict over every family. The families measured in the
    first run only are properties of the commit: their verdict holds in every run.
    """
    sel = [r for r in rows if family is None or r["family"] == family]
    keys = {(r["run"], r["change"]) for r in sel}
    if not keys:
        return "-"
    hit = {(r["run"], r["change"]) for r in sel if r["regressed"]}
    if family is None:
        fixed = {r["change"] for r in sel if r["regressed"] and r["family"] in ONCE}
        hit |= {k for k in keys if k[1] in fixed}
    return f"{len(hit)}/{len(keys)}"


TABLE_FAMILIES = ("instructions", "time", "memory", "precision")


# The families whose parameter combinations show an injection of each kind.
_RELEVANT = {
    "forward": ("instructions", "time"),
    "backward": ("instructions", "time"),
    "precision": ("precision",),
    "memory": ("memory",),
}


def table(rows: list[dict], changes: list[Change]) -> list[list[str]]:
    """One line per injection and size (the sizes of the families its kind shows in: time
    and instructions for a slowdown, the precision cases, the memory sizes); one line for
    the no-ops. Cells: runs that caught it / runs that measured it, per family at that
    size, then the gate's verdict over every benchmark of the commit ("any")."""
    head = ["injection", "size", "injected (measured)", *TABLE_FAMILIES, "gate (any)"]
    out = [head]
    noop_rows = [r for r in rows if r["kind"] == "noop"]
    if noop_rows:
        n = len({r["change"] for r in noop_rows})
        cells = [_caught(noop_rows, f) for f in TABLE_FAMILIES]
        out.append([f"no-op ({n} commits)", "all", "-", *cells, _caught(noop_rows, None)])
    for change in changes:
        if change.kind == "noop":
            continue
        mine = [r for r in rows if r["change"] == change.name]
        relevant = _RELEVANT[change.kind]
        sizes = {r["size"] for r in mine if r["family"] in relevant}
        verdict = _caught(mine, None)
        for size in sorted(sizes, key=_size_order):
            at = [r for r in mine if r["size"] == size]
            cells = [_caught(at, f) for f in TABLE_FAMILIES]
            out.append([change.label, size, _injected_factor(change, at), *cells, verdict])
    return out


def _size_order(size: str):
    m = re.fullmatch(r"(\d+)x(\d+)", size)
    return (0, int(m.group(1)) * int(m.group(2))) if m else (1, size)


def same_code_spread(rows: list[dict]) -> dict[str, dict]:
    """Per family, over the no-ops: max ratio, 99th percentile, and max of max(r, 1/r)."""
    out = {}
    for fam in (*TABLE_FAMILIES, "other"):
        xs = [r["ratio"] for r in rows if r["kind"] == "noop" and r["family"] == fam]
        if not xs:
            continue
        sym = sorted(max(x, 1 / x) for x in xs if x > 0)
        ups = sorted(xs)
        out[fam] = {
            "n": len(xs),
            "max": ups[-1],
            "p99": ups[min(len(ups) - 1, int(0.99 * len(ups)))],
            "max_sym": sym[-1],
        }
    return out


def format_table(lines: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        md = ["| " + " | ".join(lines[0]) + " |", "|" + "---|" * len(lines[0])]
        md += ["| " + " | ".join(line) + " |" for line in lines[1:]]
        return "\n".join(md)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(t.rstrip() for t in text)


def save(workdir: str, rows: list[dict], changes: list[Change], settings: Settings) -> str:
    path = os.path.join(workdir, "detection.json")
    with open(path, "w") as f:
        json.dump(
            {
                "settings": asdict(settings),
                "changes": [asdict(c) for c in changes],
                "rows": rows,
            },
            f,
            indent=1,
        )
    return path
