"""The suite over history: which commits, in which shards, and asv run over them with progress.

* :func:`first_parent_commits` lists the last ``n`` first-parent commits of a branch, or the
  first-parent commits of a range ``A..B`` (A left out, as in git and asv), oldest first.
* :func:`round_robin` splits a commit list into shards so that every shard spans the whole
  history (shard ``i`` gets commits ``i, i + k, i + 2k, ...``): each shard's graph already
  covers the range, and shards of similar length finish at similar times.
* :func:`run` runs ``asv run --skip-existing`` over a ``HASHFILE:`` list (one asv
  invocation: one benchmark discovery, one environment build) and turns asv's
  ``For <project> commit <hash>`` lines into ``commit k of N`` with the time left. Commits
  that already have results for every selected benchmark print no such line; they count as
  skipped. The whole asv output goes to a log file; the console gets progress, asv's
  top-level lines and every line that reports a failure.
* :func:`snapshot` / :func:`export_changed`: what a run added to a results directory, for
  shards that start from the stored history and hand back only what they measured.

Every bad argument raises ``UsageError`` (one line) before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from lossbench import asv_output, config, runner
from lossbench import config as config_mod
from lossbench.errors import UsageError
from lossbench.options import positive_int

TORCH_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+]*$")


# ---- commits ---------------------------------------------------------------------------


def parse_range(text: str) -> tuple[str, str]:
    if not isinstance(text, str) or text.count("..") != 1 or "..." in text:
        raise UsageError(f"range must be <from>..<to>, got {text!r}")
    start, end = (part.strip() for part in text.split(".."))
    if not start or not end:
        raise UsageError(f"range must be <from>..<to> with both ends given, got {text!r}")
    return start, end


def first_parent_commits(
    repo: Path, *, n=None, rev_range: str | None = None, branch: str = "main"
) -> list[str]:
    """Full hashes, oldest first: the last ``n`` first-parent commits of ``branch``, or the
    first-parent commits of ``rev_range`` (``A..B``: reachable from B, A and its ancestors
    left out). Exactly one of ``n`` and ``rev_range``."""
    repo = Path(repo)
    if (n is None) == (rev_range is None):
        raise UsageError("give either a number of commits or a range, not both")
    if rev_range is not None:
        start, end = parse_range(rev_range)
        spec = f"{runner.resolve(repo, start)}..{runner.resolve(repo, end)}"
        count: list[str] = []
    else:
        count = ["-n", str(positive_int(n, "N"))]
        spec = runner.resolve(repo, branch, "branch")
    commits = runner.git(repo, "rev-list", "--first-parent", *count, spec).split()
    if not commits:
        raise UsageError(f"range {rev_range!r} selects no commits")
    return commits[::-1]


def read_commits_file(repo: Path, path: Path) -> list[str]:
    """The commits of a HASHFILE (one revision a line), resolved; UsageError if empty."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"commits file {str(path)!r} does not exist")
    revs = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not revs:
        raise UsageError(f"commits file {str(path)!r} lists no commits")
    return [runner.resolve(repo, rev, f"revision in {path}") for rev in revs]


def round_robin(commits: list[str], shards) -> list[list[str]]:
    """``shards`` lists; list ``i`` holds commits ``i, i + k, ...`` (order kept). Never an
    empty list: with fewer commits than shards, one shard per commit."""
    k = positive_int(shards, "SHARDS")
    if not commits:
        raise UsageError("no commits to split")
    k = min(k, len(commits))
    return [commits[i::k] for i in range(k)]


def subjects(repo: Path, commits: list[str]) -> dict[str, str]:
    out = runner.git(repo, "log", "--no-walk=unsorted", "--format=%H %s", *commits)
    pairs = (line.split(" ", 1) for line in out.splitlines() if line)
    return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}


# ---- asv configuration ------------------------------------------------------------------


def check_torch_version(version: str) -> str:
    """``version`` if it looks like a torch release (2.13.0), else UsageError."""
    if not TORCH_VERSION.match(version):
        raise UsageError(f"torch version must look like 2.13.0, got {version!r}")
    return version


def config_for_torch(config_path: Path, torch: str | None) -> Path:
    """The config that runs the suite under torch ``torch``: ``config_path`` itself when its
    matrix already pins exactly that version, else a copy (paths made absolute, since asv
    resolves them from the config's folder) written beside the environments."""
    config_path = Path(config_path)
    if torch is None:
        return config_path
    check_torch_version(torch)
    conf = config.load(config_path).raw
    req = conf.setdefault("matrix", {}).setdefault("req", {})
    if req.get("torch") == [torch]:
        return config_path
    req["torch"] = [torch]
    base = config_path.resolve().parent
    conf.update(config.absolute_paths({"repo": ".", **conf}, base))
    env_dir = Path(conf.get("env_dir", base / "env"))
    out = env_dir.parent / "conf" / f"{config_path.stem}.torch-{torch}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(conf, indent=2) + "\n")
    return out


# ---- progress ----------------------------------------------------------------------------


def fmt_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


class Progress:
    """Turns asv's output into ``commit k of N`` lines with the time left.

    The estimate is the mean wall time of the commits measured so far times the commits
    still to come (the current one included); commits asv skipped (results already there)
    take no time and do not enter the mean. Until the first commit finishes, the time left
    is unknown.
    """

    def __init__(
        self,
        commits: list[str],
        names: dict[str, str] | None = None,
        emit: Callable[[str], None] = print,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.commits = commits
        self.names = names or {}
        self.emit = emit
        self.clock = clock
        self.started = clock()
        self.index = {c[:8]: i for i, c in enumerate(commits)}
        self.current: int | None = None
        self.current_start = 0.0
        self.measured: list[float] = []
        self.skipped: list[int] = []
        self.seen = -1  # highest commit index reached

    def _close_current(self, now: float) -> None:
        if self.current is not None:
            self.measured.append(now - self.current_start)
            self.current = None

    def _skip_up_to(self, k: int) -> None:
        self.skipped.extend(range(self.seen + 1, k))

    def time_left(self, remaining: int) -> float | None:
        if not self.measured:
            return None
        return sum(self.measured) / len(self.measured) * remaining

    def feed(self, line: str) -> None:
        commit = asv_output.commit_of(line)
        if commit is None:
            return
        k = self.index.get(commit[:8])
        if k is None or k <= self.seen:
            return
        now = self.clock()
        self._close_current(now)
        self._skip_up_to(k)
        self.seen = k
        self.current, self.current_start = k, now
        n = len(self.commits)
        left = self.time_left(n - k)
        eta = "time left unknown" if left is None else f"~{fmt_duration(left)} left"
        subject = self.names.get(self.commits[k], "")
        subject = (subject[:57] + "...") if len(subject) > 60 else subject
        self.emit(
            f"history: commit {k + 1} of {n} {self.commits[k][:8]} {subject} "
            f"[{fmt_duration(now - self.started)} elapsed, {eta}]".replace("  ", " ")
        )

    def finish(self) -> str:
        now = self.clock()
        self._close_current(now)
        self._skip_up_to(len(self.commits))
        self.seen = len(self.commits) - 1
        return (
            f"{len(self.measured)} commits measured, {len(self.skipped)} already had results, "
            f"{fmt_duration(now - self.started)}"
        )


def run(
    commits: list[str],
    *,
    repo: Path,
    config: Path,
    machine: str | None = None,
    bench: Iterable[str] = (),
    launch_method: str | None = None,
    log_path: Path,
    emit: Callable[[str], None] = print,
) -> int:
    """``asv run --skip-existing`` over ``commits``; returns asv's exit status (0 ok,
    2 some benchmark failed; results are saved either way)."""
    hashfile = runner.write_hashfile(Path(log_path).with_suffix(".commits"), commits)
    args = runner.asv_args("run", Path(config).resolve(), machine, launch_method)
    args.append("--skip-existing")
    for regex in bench:
        args += ["-b", regex]
    args.append(f"HASHFILE:{Path(hashfile).resolve()}")
    progress = Progress(commits, subjects(repo, commits), emit=emit)
    counts = asv_output.OutputFilter()  # failures and skipped combinations, counted

    def on_line(line: str) -> None:
        progress.feed(line)
        counts.feed(line)
        if asv_output.worth_echoing(line):
            emit("asv: " + line.strip())

    emit(
        f"history: {len(commits)} commits {commits[0][:8]}..{commits[-1][:8]} (asv log: {log_path})"
    )
    rc = runner.run_asv(
        args, repo=repo, log_path=log_path, on_line=on_line,
        idle_limit=config_mod.idle_limit(config),
    )  # fmt: skip
    counts.finish()
    emit(f"history: {counts.skip_summary()}")
    emit(f"history: done: {progress.finish()}; asv exit {rc}")
    return rc


# ---- what a run added ----------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(results: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``results`` (empty if it does not exist)."""
    results = Path(results)
    if not results.is_dir():
        return {}
    return {
        p.relative_to(results).as_posix(): _digest(p)
        for p in sorted(results.rglob("*"))
        if p.is_file()
    }


def check_export_folder(out: Path) -> None:
    """UsageError unless ``out`` is missing or empty (an export never mixes with older files)."""
    if out.exists() and any(out.iterdir()):
        raise UsageError(f"export folder {out} is not empty")


def export_changed(results: Path, before: dict[str, str], out: Path) -> list[str]:
    """Copies into ``out`` the result files that are new or changed since ``before``, with
    ``benchmarks.json`` and the ``machine.json`` of every machine folder that has one.
    ``out`` must not hold anything yet. Returns the copied relative paths."""
    results, out = Path(results), Path(out)
    check_export_folder(out)
    after = snapshot(results)
    changed = [rel for rel, digest in after.items() if before.get(rel) != digest]
    keep = {"benchmarks.json"} | {rel for rel in after if rel.endswith("/machine.json")}
    picked = sorted(set(changed) | (keep & set(after)))
    for rel in picked:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(results / rel, dest)
    return picked
