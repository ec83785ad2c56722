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
"""

from __future__ import annotations

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
from lossbench.history import fmt_duration, round_robin
from lossbench.runner import git, line_process, resolve, write_hashfile


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


def _pump(prefix: str, stream, emit: Callable[[str], None], lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            emit(prefix + line.rstrip("\n"))


def run_local(
    repo: Path,
    commits: list[str],
    shards,
    *,
    config: str = "asv.conf.json",
    machine: str | None = None,
    bench: list[str] | None = None,
    launch_method: str | None = None,
    torch: str | None = None,
    workdir: Path | None = None,
    accept_new_versions: bool = False,
    emit: Callable[[str], None] = print,
) -> int:
    """Runs the shards, merges them into the stored history. Returns 0, or 3 when some
    benchmark failed (its results are merged all the same); raises ToolError (one line) when
    a shard could not run, MergeError when the merge check fails (nothing written)."""
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
    procs = []
    for i, shard_commits in enumerate(plan):
        d = workdir / f"shard-{i}"
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
        if launch_method:
            cmd += ["--launch-method", launch_method]
        if torch:
            cmd += ["--torch", torch]
        # the clone's own tools (its benchmark code's twin), and its own HOME
        path = os.pathsep.join(filter(None, [str(clone / "tools"), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "HOME": str(home), "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
        env.pop("MAKEFLAGS", None)
        proc = line_process(cmd, clone, env)
        procs.append((i, d, proc))
    lock = threading.Lock()
    pumps = [
        threading.Thread(target=_pump, args=(f"[shard {i}] ", p.stdout, emit, lock), daemon=True)
        for i, _, p in procs
    ]
    for t in pumps:
        t.start()
    codes = [(i, d, p.wait()) for i, d, p in procs]
    for t in pumps:
        t.join()
    shard_wall = time.monotonic() - started
    for i, d, rc in codes:
        if rc not in (EXIT_OK, EXIT_FAILURE):  # a failed benchmark's shard is merged too
            raise ToolError(f"shard {i} exited {rc} (log: {d / 'history.log'}); nothing merged")
    exports = [d / "export" for _, d, _ in codes]
    merged = merge_mod.merge(store, exports, accept_new_versions=accept_new_versions)
    emit(
        f"backfill-local: shards done in {fmt_duration(shard_wall)} "
        f"({shard_wall:.0f} s); merged into {store}: {merged.summary()}"
    )
    return EXIT_FAILURE if any(rc == EXIT_FAILURE for _, _, rc in codes) else EXIT_OK
