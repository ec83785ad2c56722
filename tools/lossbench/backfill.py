"""A sharded backfill on one machine, the way CI runs it: the local proof without GitHub.

Each shard is a separate ``python -m lossbench history`` process in its own clone of this
repository (at ``HEAD``: the committed benchmark code) with its own ``HOME`` (its own asv
machine file, pip cache) and its own asv environment. Each clone starts from a copy of the
stored history, so ``--skip-existing`` works as in a single run, and hands back only the
files it added or changed (``--export``). The exports are then merged into the stored
history with every check of :mod:`lossbench.merge`; a failed check leaves the store
untouched and the exports in place for a look.

The clones, their environments and homes stay under ``workdir`` (one folder per shard) and
are reused by the next backfill: only the first one pays for the environment builds.

**Resumable.** A shard that finished (exit 0, or 3 with some benchmark failed: its export
is complete either way) leaves ``done.json`` beside its export, naming the commit of the
benchmark code and the commits it ran. Run again with the same commits and HEAD, the
backfill keeps those shards and runs only the others; a shard that failed before
exporting is named with its own last error line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from lossbench import merge as merge_mod
from lossbench.config import results_dir
from lossbench.errors import EXIT_FAILURE, EXIT_OK, ToolError
from lossbench.files import write_atomic
from lossbench.history import fmt_duration, round_robin
from lossbench.runner import exit_text, git, line_process, resolve, stop, write_hashfile


def prepare_clone(source: Path, head: str, clone: Path) -> None:
    """``clone`` is a clone of ``source`` with every branch and ``head`` checked out."""
    if not (clone / ".git").is_dir():
        if clone.exists():
            shutil.rmtree(clone)
        clone.parent.mkdir(parents=True, exist_ok=True)
        git(source, "clone", "--quiet", "--no-checkout", str(source), str(clone))
    git(clone, "fetch", "--quiet", "--force", "origin", "+refs/heads/*:refs/remotes/origin/*")
    git(clone, "fetch", "--quiet", "origin", "HEAD")
    if git(clone, "rev-parse", "FETCH_HEAD") != head:
        raise ToolError(f"HEAD of {source} moved while preparing shard clone {clone}")
    git(clone, "checkout", "--quiet", "--force", "--detach", head)


def _pump(
    prefix: str, stream, emit: Callable[[str], None], lock: threading.Lock, errors: list[str]
) -> None:
    """Echoes a shard's lines; keeps the last one that reports an error."""
    for line in stream:
        line = line.rstrip("\n")
        if ": error: " in line or "internal error" in line:
            errors[:] = [line.strip()]
        with lock:
            emit(prefix + line)


DONE = "done.json"


def finished(shard_dir: Path, head: str, commits: list[str]) -> int | None:
    """The exit status of the shard whose complete export of these commits at this HEAD
    ``shard_dir`` holds (0, or 3: some benchmark failed); None when there is none."""
    try:
        done = json.loads((shard_dir / DONE).read_text())
    except (OSError, ValueError):
        return None
    if (
        isinstance(done, dict)
        and done.get("head") == head
        and done.get("commits") == commits
        and done.get("exit") in (EXIT_OK, EXIT_FAILURE)
        and (shard_dir / "export").is_dir()
    ):
        return done["exit"]
    return None


def run_local(
    repo: Path,
    commits: list[str],
    shards,
    *,
    config: str = "asv.conf.json",
    machine: str | None = None,
    bench: list[str] | None = None,
    skip_family: str | None = None,
    launch_method: str | None = None,
    torch: str | None = None,
    workdir: Path | None = None,
    accept_new_versions: bool = False,
    emit: Callable[[str], None] = print,
) -> int:
    """Runs the shards not finished yet, merges every shard into the stored history.
    Returns 0, or 3 when some benchmark failed (its results are merged all the same);
    raises ToolError (one line) when a shard could not run (the finished ones are kept for
    the next run), MergeError when the merge check fails (nothing written)."""
    repo = Path(repo).resolve()
    plan = round_robin(commits, shards)
    store = results_dir(repo / config)
    workdir = Path(workdir) if workdir is not None else store.parent / "backfill"
    workdir = workdir.resolve()
    head = resolve(repo, "HEAD")
    dirty = git(repo, "status", "--porcelain", "--", "benchmarks", config).strip()
    if dirty:
        emit("backfill-local: note: uncommitted benchmark changes are not in the shards (HEAD)")
    emit(
        f"backfill-local: {len(commits)} commits in {len(plan)} shards "
        f"({', '.join(str(len(p)) for p in plan)} commits), benchmark code of {head[:8]}"
    )
    started = time.monotonic()
    procs, kept = [], []
    for i, shard_commits in enumerate(plan):
        d = workdir / f"shard-{i}"
        if (rc := finished(d, head, shard_commits)) is not None:
            kept.append((i, d, rc))
            continue
        (d / DONE).unlink(missing_ok=True)
        clone, home, export = d / "repo", d / "home", d / "export"
        prepare_clone(repo, head, clone)
        home.mkdir(parents=True, exist_ok=True)
        shard_results = results_dir(clone / config)
        if shard_results.exists():
            shutil.rmtree(shard_results)
        if store.is_dir():
            shutil.copytree(store, shard_results)
        if export.exists():
            shutil.rmtree(export)
        commits_file = write_hashfile(d / "commits.txt", shard_commits)
        cmd = [sys.executable, "-m", "lossbench", "history", "--config", config]
        cmd += ["--commits-file", str(commits_file), "--export", str(export)]
        cmd += ["--log", str(d / "history.log")]
        if machine:
            cmd += ["--machine", machine]
        for regex in bench or []:
            cmd += ["-b", regex]
        if skip_family:
            cmd += ["--skip-family", skip_family]
        if launch_method:
            cmd += ["--launch-method", launch_method]
        if torch:
            cmd += ["--torch", torch]
        # the clone's own tools (its benchmark code's twin), and its own HOME
        path = os.pathsep.join(filter(None, [str(clone / "tools"), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        env.pop("MAKEFLAGS", None)
        proc = line_process(cmd, clone, env)
        procs.append((i, d, proc, shard_commits, []))
    if kept:
        emit(
            f"backfill-local: shards {', '.join(str(i) for i, _, _ in kept)} finished before "
            f"(same commits, benchmark code of {head[:8]}): kept, not run again"
        )
    lock = threading.Lock()
    pumps = [
        threading.Thread(
            target=_pump, args=(f"[shard {i}] ", p.stdout, emit, lock, errors), daemon=True
        )
        for i, _, p, _, errors in procs
    ]
    for t in pumps:
        t.start()
    codes = list(kept)
    try:
        for i, d, p, shard_commits, _ in procs:
            rc = p.wait()
            codes.append((i, d, rc))
            if rc in (EXIT_OK, EXIT_FAILURE):  # a failed benchmark's shard is merged too
                done = {"head": head, "commits": shard_commits, "exit": rc}
                write_atomic(d / DONE, (json.dumps(done, indent=1) + "\n").encode())
    finally:
        for _, _, p, _, _ in procs:
            stop(p)
    for t in pumps:
        t.join()
    shard_wall = time.monotonic() - started
    codes.sort()
    failed = [(i, d, rc) for i, d, rc in codes if rc not in (EXIT_OK, EXIT_FAILURE)]
    if failed:
        why = {i: errors for i, _, _, _, errors in procs}
        i, d, rc = failed[0]
        last = why[i][0] if why.get(i) else "no error line"
        finished_ = [str(j) for j, _, r in codes if r in (EXIT_OK, EXIT_FAILURE)]
        keep = f"; shards {', '.join(finished_)} finished and are kept" if finished_ else ""
        raise ToolError(
            f"shard {i} ended with {exit_text(rc)} ({last}; log: {d / 'history.log'}): "
            f"nothing merged{keep}; run again to measure what is missing"
        )
    exports = [d / "export" for _, d, _ in codes]
    merged = merge_mod.merge(store, exports, accept_new_versions=accept_new_versions)
    emit(
        f"backfill-local: shards done in {fmt_duration(shard_wall)} "
        f"({shard_wall:.0f} s); merged into {store}: {merged.summary()}"
    )
    return EXIT_FAILURE if any(rc == EXIT_FAILURE for _, _, rc in codes) else EXIT_OK
