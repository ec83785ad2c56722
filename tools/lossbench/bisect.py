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

from lossbench import asv_output, config, results, runner
from lossbench.errors import ToolError, UsageError
from lossbench.families import check_tools


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
    conf_file: str = "asv.conf.json",
    launch_method: str | None = None,
    impl: str | None = None,
    echo=None,
) -> Found:
    good = runner.resolve(repo, good_rev, "GOOD")
    bad = runner.resolve(repo, bad_rev, "BAD")
    if good == bad or not runner.is_ancestor(repo, good, bad):
        raise UsageError(f"GOOD {good_rev!r} is not an ancestor of BAD {bad_rev!r}")
    if good not in runner.git(repo, "rev-list", "--first-parent", bad).split():
        raise UsageError(
            f"GOOD {good_rev!r} is not on BAD {bad_rev!r}'s first-parent line (it came in "
            "through a merge): asv find searches first parents only; give a GOOD on that line"
        )
    before_good = runner.first_parent(repo, good)
    range_spec = f"{before_good}..{bad}" if before_good else bad
    conf = os.path.join(repo, conf_file)
    log_path = os.path.join(repo, ".asv", "bisect.log")
    if echo is not None:
        echo(f"bisect: {good[:8]}..{bad[:8]} on {bench!r}; asv output in {log_path}")
    runner.ensure_machine(machine, log_path=log_path)
    args = runner.asv_args("find", conf, machine, launch_method)
    env = dict(os.environ)
    if impl:
        env["SOFTMAXLOSS_INSTRUCTION_IMPLS"] = impl
    found, errors = [], []

    def on_line(line: str) -> None:
        if echo is not None and asv_output.is_progress(line):
            echo(line)
        if (commit := asv_output.found_commit(line)) is not None:
            found.append(commit)
        if "rror" in line:
            errors.append(line.strip())

    with runner.checkout_lock(repo, "bisect"):
        results_dir = config.results_dir(conf)
        try:
            listed = results.load_benchmarks(results_dir)
        except ToolError:
            listed = None
        check_tools(bench, (), listed)
        for line in results.repair(results_dir, machine):
            if echo is not None:
                echo(f"bisect: {line}")
        rc = runner.run_asv(
            [*args, range_spec, bench], repo=repo, log_path=log_path, on_line=on_line, env=env,
            idle_limit=config.idle_limit(conf),
        )  # fmt: skip
    if rc != 0 or not found:
        why = errors[-1] if errors else f"asv find ended with {runner.exit_text(rc)}"
        raise ToolError(f"{why}; see {log_path}")
    commit = runner.resolve(repo, found[-1])
    subject = runner.git(repo, "log", "-1", "--format=%s", commit)
    parent = runner.first_parent(repo, commit)
    return Found(commit, subject, parent, _values(conf, machine, bench, parent, commit))


def _values(conf, machine, bench, parent, commit):
    """The benchmark's values at the parent and at the found commit, where measured."""
    results_dir = config.results_dir(conf)

    def load(h):
        if h is None:
            return {}
        try:
            return results.load_commit(results_dir, machine, h, need_units=False)
        except ToolError:
            return {}

    before, after = load(parent), load(commit)
    out = []
    for key, new in sorted(after.items()):
        if re.search(bench, new.label) is None or new.failed or new.skipped:
            continue
        old = before.get(key)
        out.append((", ".join(new.params), None if old is None else old.value, new.value))
    return out
