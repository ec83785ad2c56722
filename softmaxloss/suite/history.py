"""The suite over history: which commits, in which shards, and asv run over them with progress.

* :func:`first_parent_commits` lists the last ``n`` first-parent commits of a branch, or the
  first-parent commits of a range ``A..B`` (A left out, as in git and asv), oldest first.
* :func:`round_robin` splits a commit list into shards so that every shard spans the whole
  history (shard ``i`` gets commits ``i, i + k, i + 2k, ...``): each shard's graph already
  covers the range, and shards of similar length finish at similar times.
* :func:`run_asv` runs ``asv run --skip-existing`` over a ``HASHFILE:`` list (one asv
  invocation: one benchmark discovery, one environment build) and turns asv's
  ``For <project> commit <hash>`` lines into ``commit k of N`` with the time left. Commits
  that already have results for every selected benchmark print no such line; they count as
  skipped. The whole asv output goes to a log file; the console gets progress, asv's
  top-level lines and every line that reports a failure.
* :func:`snapshot` / :func:`export_changed`: what a run added to a results directory, for
  shards that start from the stored history and hand back only what they measured.

Every bad argument raises :class:`HistoryError` (one line) before anything runs.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from softmaxloss.suite import config as asv_config
from softmaxloss.suite.asv_output import OutputFilter
from softmaxloss.suite.asv_run import line_process

COMMIT_LINE = re.compile(r"\bFor \S+ commit ([0-9a-f]{8,40})\b")
FAILED = re.compile(r"\sfailed\s*$")
ERROR = re.compile(r"\b(Error|error|failed)\b")
TORCH_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+]*$")
PATH_KEYS = ("benchmark_dir", "env_dir", "results_dir", "html_dir")


class HistoryError(Exception):
    """A one-line reason a history run or plan cannot start."""


# ---- commits ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, stdin=subprocess.DEVNULL
    )
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise HistoryError(f"git {' '.join(args)}: {detail}")
    return proc.stdout


def resolve(repo: Path, rev: str, what: str = "revision") -> str:
    """The full hash of ``rev``; HistoryError naming it when git does not know it."""
    if not rev or rev.startswith("-"):
        raise HistoryError(f"{what} {rev!r} is not a revision")
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise HistoryError(f"unknown {what} {rev!r}")
    return proc.stdout.strip()


def positive_int(value, what: str) -> int:
    """``value`` (an int or its decimal text) as an int >= 1, else HistoryError naming ``what``."""
    if isinstance(value, bool):
        raise HistoryError(f"{what} must be a positive integer, got {value!r}")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        number = int(value)
    else:
        raise HistoryError(f"{what} must be a positive integer, got {value!r}")
    if number < 1:
        raise HistoryError(f"{what} must be a positive integer, got {value!r}")
    return number


def parse_range(text: str) -> tuple[str, str]:
    if not isinstance(text, str) or text.count("..") != 1 or "..." in text:
        raise HistoryError(f"range must be <from>..<to>, got {text!r}")
    start, end = (part.strip() for part in text.split(".."))
    if not start or not end:
        raise HistoryError(f"range must be <from>..<to> with both ends given, got {text!r}")
    return start, end


def first_parent_commits(
    repo: Path, *, n=None, rev_range: str | None = None, branch: str = "main"
) -> list[str]:
    """Full hashes, oldest first: the last ``n`` first-parent commits of ``branch``, or the
    first-parent commits of ``rev_range`` (``A..B``: reachable from B, A and its ancestors
    left out). Exactly one of ``n`` and ``rev_range``."""
    repo = Path(repo)
    if (n is None) == (rev_range is None):
        raise HistoryError("give either a number of commits or a range, not both")
    if rev_range is not None:
        start, end = parse_range(rev_range)
        spec = f"{resolve(repo, start, 'revision')}..{resolve(repo, end, 'revision')}"
        count: list[str] = []
    else:
        count = ["-n", str(positive_int(n, "N"))]
        spec = resolve(repo, branch, "branch")
    commits = git(repo, "rev-list", "--first-parent", *count, spec).split()
    if not commits:
        raise HistoryError(f"range {rev_range!r} selects no commits")
    return commits[::-1]


def read_commits_file(repo: Path, path: Path) -> list[str]:
    """The commits of a HASHFILE (one revision a line), resolved; HistoryError if empty."""
    path = Path(path)
    if not path.is_file():
        raise HistoryError(f"commits file {str(path)!r} does not exist")
    revs = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not revs:
        raise HistoryError(f"commits file {str(path)!r} lists no commits")
    return [resolve(Path(repo), rev, f"revision in {path}") for rev in revs]


def round_robin(commits: list[str], shards) -> list[list[str]]:
    """``shards`` lists; list ``i`` holds commits ``i, i + k, ...`` (order kept). Never an
    empty list: with fewer commits than shards, one shard per commit."""
    k = positive_int(shards, "SHARDS")
    if not commits:
        raise HistoryError("no commits to split")
    k = min(k, len(commits))
    return [commits[i::k] for i in range(k)]


def subjects(repo: Path, commits: list[str]) -> dict[str, str]:
    out = git(Path(repo), "log", "--no-walk=unsorted", "--format=%H %s", *commits)
    pairs = (line.split(" ", 1) for line in out.splitlines() if line)
    return {p[0]: (p[1] if len(p) > 1 else "") for p in pairs}


# ---- asv configuration ------------------------------------------------------------------


def load_asv_config(path: Path) -> dict:
    """asv.conf.json as a dict (read by :mod:`softmaxloss.suite.config`)."""
    return asv_config.load(path).raw


def results_dir(config_path: Path) -> Path:
    return asv_config.load(config_path).results_dir


def config_for_torch(config_path: Path, torch: str | None) -> Path:
    """The config that runs the suite under torch ``torch``: ``config_path`` itself when its
    matrix already pins exactly that version, else a copy (paths made absolute, since asv
    resolves them from the config's folder) written beside the environments."""
    config_path = Path(config_path)
    if torch is None:
        return config_path
    if not TORCH_VERSION.match(torch):
        raise HistoryError(f"torch version must look like 2.13.0, got {torch!r}")
    conf = load_asv_config(config_path)
    req = conf.setdefault("matrix", {}).setdefault("req", {})
    if req.get("torch") == [torch]:
        return config_path
    req["torch"] = [torch]
    base = config_path.resolve().parent
    repo = conf.get("repo", ".")
    if not re.match(r"^[a-z+]+://|^git@", repo):
        conf["repo"] = str((base / repo).resolve())
    for key in PATH_KEYS:
        if key in conf:
            conf[key] = str((base / conf[key]).resolve())
    env_dir = Path(conf.get("env_dir", base / "env"))
    out = env_dir.parent / "conf" / f"{config_path.stem}.torch-{torch}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(conf, indent=2) + "\n")
    return out


def ensure_machine(machine: str | None, env: dict | None = None) -> None:
    """Writes asv's machine file entry for ``machine`` (auto-detected fields) when missing.
    An existing entry is left as it is: CI writes fixed fields for its hardware classes."""
    env = dict(os.environ if env is None else env)
    path = Path(env.get("HOME", "~")).expanduser() / ".asv-machine.json"
    if path.is_file():
        try:
            known = json.loads(path.read_text())
        except ValueError:
            raise HistoryError(f"{path} is not valid JSON") from None
        if machine is None or machine in known:
            return
    cmd = [sys.executable, "-m", "asv", "machine", "--yes"]
    if machine:
        cmd += ["--machine", machine]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise HistoryError(f"asv machine failed: {(proc.stderr.strip() or proc.stdout.strip())}")


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
        m = COMMIT_LINE.search(line)
        if not m:
            return
        k = self.index.get(m.group(1)[:8])
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


def _echo_line(line: str) -> bool:
    """asv lines worth a console line: its top-level steps, each benchmark that failed, and
    asv's own messages (not indented). Benchmark stderr and result tables stay in the log."""
    if not line.strip():
        return False
    text = re.sub(r"^\[\s*[0-9.]+%\]\s*", "", line)
    if COMMIT_LINE.search(text):
        return False
    if text.startswith("· "):
        return True
    if text.startswith("·· ") and ERROR.search(text):  # e.g. "·· Error running ... pip wheel"
        return True
    if text.startswith("··· ") and FAILED.search(text):
        return True
    return text == line and not line[0].isspace()


def run_asv(
    commits: list[str],
    *,
    repo: Path,
    config: Path,
    machine: str | None = None,
    bench: Iterable[str] = (),
    launch_method: str | None = None,
    log_path: Path,
    env: dict | None = None,
    emit: Callable[[str], None] = print,
) -> int:
    """``asv run --skip-existing`` over ``commits``; returns asv's exit status (0 ok,
    2 some benchmark failed; results are saved either way)."""
    repo = Path(repo)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    hashfile = log_path.with_suffix(".commits")
    hashfile.write_text("".join(c + "\n" for c in commits))
    cmd = [sys.executable, "-m", "asv", "run", "--config", str(Path(config).resolve())]
    cmd += ["--skip-existing", "--show-stderr"]
    if machine:
        cmd += ["--machine", machine]
    if launch_method:
        cmd += ["--launch-method", launch_method]
    for regex in bench:
        cmd += ["-b", regex]
    cmd.append(f"HASHFILE:{hashfile.resolve()}")
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    progress = Progress(commits, subjects(repo, commits), emit=emit)
    counts = OutputFilter()  # failures and skipped combinations, counted
    emit(
        f"history: {len(commits)} commits {commits[0][:8]}..{commits[-1][:8]} (asv log: {log_path})"
    )
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        proc = line_process(cmd, repo, env)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            line = line.rstrip("\n")
            progress.feed(line)
            counts.feed(line)
            if _echo_line(line):
                emit("asv: " + line.strip())
        rc = proc.wait()
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


def export_changed(results: Path, before: dict[str, str], out: Path) -> list[str]:
    """Copies into ``out`` the result files that are new or changed since ``before``, with
    ``benchmarks.json`` and the ``machine.json`` of every machine folder that has one.
    ``out`` must not hold anything yet. Returns the copied relative paths."""
    results, out = Path(results), Path(out)
    if out.exists() and any(out.iterdir()):
        raise HistoryError(f"export folder {out} is not empty")
    after = snapshot(results)
    changed = [rel for rel, digest in after.items() if before.get(rel) != digest]
    keep = {"benchmarks.json"} | {rel for rel in after if rel.endswith("/machine.json")}
    picked = sorted(set(changed) | (keep & set(after)))
    for rel in picked:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(results / rel, dest)
    return picked
