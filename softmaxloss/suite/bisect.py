"""``asv find`` over GOOD..BAD, with GOOD itself in the range and a one-line answer.

asv's ``find A..B`` searches the commits of ``git log A..B``, which leaves A out: when the
first commit after A is the bad one, it has no good commit to compare with. The range
given here is ``GOOD^..BAD`` (GOOD's first parent), so GOOD is the search's low end. asv
prints "Greatest regression found: <hash>"; that commit, its subject, and the benchmark's
values there and just before (from the result files) are returned.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from softmaxloss.suite import asv_run, results

_FOUND = re.compile(r"Greatest regression found: ([0-9a-f]{7,40})")


@dataclass
class Found:
    commit: str
    subject: str
    parent: str | None
    values: list[tuple[str, float | None, float | None]]  # (params, before, after)


def bisect(
    repo: str,
    good_rev: str,
    bad_rev: str,
    bench: str,
    machine: str,
    config: str = "asv.conf.json",
    launch_method: str | None = None,
    impl: str | None = None,
    log_path: str | None = None,
    echo=None,
) -> Found:
    good = asv_run.resolve(repo, good_rev)
    bad = asv_run.resolve(repo, bad_rev)
    if good == bad or not asv_run.is_ancestor(repo, good, bad):
        raise asv_run.SuiteError(f"GOOD {good_rev!r} is not an ancestor of BAD {bad_rev!r}")
    parents = asv_run.git(repo, "rev-list", "--parents", "-n", "1", good).split()[1:]
    range_spec = f"{parents[0]}..{bad}" if parents else bad
    config = os.path.join(repo, config)
    log_path = log_path or os.path.join(repo, ".asv", "bisect.log")
    if echo is not None:
        echo(f"bisect: {good[:8]}..{bad[:8]} on {bench!r}; asv output in {log_path}")
    args = ["find", "--config", config, "--machine", machine, "--show-stderr"]
    if launch_method:
        args += ["--launch-method", launch_method]
    env = dict(os.environ)
    if impl:
        env["SOFTMAXLOSS_INSTRUCTION_IMPLS"] = impl
    start = os.path.getsize(log_path) if os.path.exists(log_path) else 0
    rc = asv_run.run_asv([*args, range_spec, bench], repo, log_path, echo, env=env)
    with open(log_path) as f:
        f.seek(start)
        out = f.read()
    match = _FOUND.search(out)
    if rc != 0 or not match:
        errors = [line.strip() for line in out.splitlines() if "rror" in line]
        why = errors[-1] if errors else f"asv find exited {rc}"
        raise asv_run.SuiteError(f"{why}; see {log_path}")
    commit = asv_run.resolve(repo, match.group(1))
    subject = asv_run.git(repo, "log", "-1", "--format=%s", commit)
    parents = asv_run.git(repo, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    parent = parents[0] if parents else None
    return Found(commit, subject, parent, _values(config, machine, bench, parent, commit))


def _values(config, machine, bench, parent, commit):
    """The benchmark's values at the parent and at the found commit, where measured."""
    results_dir = asv_run.results_dir(config)

    def load(h):
        if h is None:
            return {}
        try:
            return results.load_commit(results_dir, machine, h, need_units=False)
        except results.ResultsError:
            return {}

    before, after = load(parent), load(commit)
    out = []
    for key, new in sorted(after.items()):
        if re.search(bench, new.label) is None or new.failed or new.skipped:
            continue
        old = before.get(key)
        out.append((", ".join(new.params), None if old is None else old.value, new.value))
    return out
