"""History commands: ``history``, ``backfill-plan``, ``backfill-local`` and ``merge-results``.

``history``: the asv suite over the last N first-parent commits of the config's branch (or a
range, or a HASHFILE list) with ``--skip-existing`` and ``commit k of N`` progress; ``make
history`` publishes the site afterwards. ``backfill-plan``: the round-robin shard lists a CI
matrix runs. ``backfill-local``: the same shards as separate local processes, merged.
``merge-results``: the checked merge of shard result folders into the stored history.

Exit status (``lossbench.errors``): 0 done; 2 bad input or a failed merge check (one line
on stderr, nothing run or written); 3 a benchmark or asv itself failed (what was measured is
saved; ``make history`` still publishes the site; see the log).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from lossbench import backfill, config, families, merge, runner
from lossbench import history as hist
from lossbench.errors import EXIT_OK, ToolError, UsageError
from lossbench.options import add_asv_options, parse_choices, positive_int
from lossbench.results import load_benchmarks, repair


def _results_machine(machine: str | None) -> str:
    """The machine folder asv writes results into for ``--machine`` (None: this host's, by
    asv's own rule)."""
    from asv import util
    from asv.machine import Machine, MachineCollection

    name = machine or Machine.get_unique_machine_name()
    try:
        return MachineCollection.load(name).get("machine", name)
    except util.UserError:  # not in the machine file (yet): asv will write it under name
        return name


DEFAULT_N = 20


def _selection(p, default_n: bool = True) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-n",
        dest="n",
        metavar="N",
        default=None,
        help=f"the last N first-parent commits of the config's branch"
        f"{f' (default {DEFAULT_N})' if default_n else ''}",
    )
    g.add_argument(
        "--range", dest="rev_range", metavar="A..B", help="first-parent commits of A..B (A out)"
    )
    return g


def _asv_options(p) -> None:
    add_asv_options(p, "asv's")
    p.add_argument(
        "-b",
        "--bench",
        action="append",
        default=[],
        metavar="REGEX",
        help="asv's benchmark selection (repeatable; default: the whole suite)",
    )
    p.add_argument(
        "--torch", default=None, help="run under this torch version (one asv environment)"
    )
    p.add_argument(
        "--skip-family",
        metavar="F1,F2",
        help="leave these families out (e.g. instructions,cycles where valgrind is missing); "
        "without it, a family whose tool is missing stops the run before it starts",
    )


def add_parser(sub):
    p = sub.add_parser(
        "history",
        help="run the asv suite over the last N commits of main (skip measured ones)",
        description="asv run --skip-existing over first-parent commits, oldest first, "
        "printing 'commit k of N' and the time left. make history publishes the site after.",
    )
    g = _selection(p)
    g.add_argument("--commits-file", type=Path, help="a HASHFILE: one revision a line")
    _asv_options(p)
    p.add_argument(
        "--export",
        type=Path,
        default=None,
        help="copy what this run added or changed (plus benchmarks.json, machine.json) here",
    )
    p.add_argument("--log", type=Path, default=None, help="asv's full output (default .asv/)")
    p.set_defaults(func=run_history)

    p = sub.add_parser(
        "backfill-plan",
        help="split a commit range round-robin into shard HASHFILE lists (CI matrix)",
    )
    _selection(p, default_n=False)
    p.add_argument("--shards", required=True, help="number of shards (>= 1)")
    p.add_argument("--out", type=Path, required=True, help="folder for shard-<i>.txt")
    p.add_argument("--torch", default=None, help="torch versions, space or comma separated")
    p.add_argument("--github-output", type=Path, default=None, help="append matrix outputs here")
    p.add_argument("--branch", default="main")
    p.set_defaults(func=run_plan)

    p = sub.add_parser(
        "backfill-local",
        help="the shards as separate local processes (clones, HOMEs), merged into the history",
    )
    _selection(p)
    p.add_argument("--shards", required=True, help="number of shards (>= 1)")
    _asv_options(p)
    p.add_argument("--workdir", type=Path, default=None, help="shard clones (default .asv/)")
    p.add_argument("--accept-new-versions", action="store_true")
    p.set_defaults(func=run_local)

    p = sub.add_parser(
        "merge-results",
        help="checked merge of shard asv results into the stored history",
    )
    p.add_argument("--into", type=Path, required=True, help="the stored history (results_dir)")
    p.add_argument("shards", type=Path, nargs="+", help="shard results folders")
    p.add_argument(
        "--accept-new-versions",
        action="store_true",
        help="benchmarks whose code changed: graph the new version only",
    )
    p.add_argument("--check", action="store_true", help="check only, write nothing")
    p.set_defaults(func=run_merge)
    return p


def _branch(config_path: str) -> str:
    branches = config.load(config_path).raw.get("branches") or ["main"]
    return branches[0]


def _commits(args, repo: Path, branch: str, default_n: int | None) -> list[str]:
    if getattr(args, "commits_file", None) is not None:
        return hist.read_commits_file(repo, args.commits_file)
    if args.rev_range is not None:
        return hist.first_parent_commits(repo, rev_range=args.rev_range, branch=branch)
    n = args.n if args.n is not None else default_n
    if n is None:
        raise UsageError("give -n N or --range A..B")
    return hist.first_parent_commits(repo, n=n, branch=branch)


def _check_bench(patterns: list[str]) -> None:
    for regex in patterns:
        try:
            re.compile(regex)
        except re.error as exc:
            raise UsageError(f"-b {regex!r} is not a regular expression: {exc}") from None


def _skip_families(text: str | None) -> list[str]:
    if not text:
        return []
    return parse_choices("--skip-family", text, families.FAMILY_BENCHMARKS)


def selection(bench: list[str], skip: list[str]) -> list[str]:
    """asv's ``-b`` list with the ``skip`` families left out of each (the whole suite when
    ``bench`` is empty)."""
    return [families.without_families(b, skip) for b in bench or ([".*"] if skip else [])]


def check_tools(bench: list[str], skip: list[str], conf) -> None:
    """Refuses a run whose selection needs a tool this machine lacks (before it starts)."""
    try:
        listed = load_benchmarks(config.results_dir(conf))
    except ToolError:
        listed = None
    families.check_tools("|".join(f"(?:{b})" for b in bench) or ".*", skip, listed)


def run_history(args) -> int:
    repo = runner.repo_root()
    commits = _commits(args, repo, _branch(args.config), DEFAULT_N)
    _check_bench(args.bench)
    skip = _skip_families(args.skip_family)
    conf = hist.config_for_torch(Path(args.config), args.torch)
    results = config.results_dir(conf)
    if args.export is not None:
        hist.check_export_folder(args.export)
    check_tools(args.bench, skip, conf)
    log = args.log or results.parent / "history.log"
    runner.ensure_machine(args.machine, log_path=log)
    machine = _results_machine(args.machine)
    with runner.checkout_lock(repo, "history"):
        holes = families.tool_benchmarks(skip)
        for line in repair(results, machine) + repair(results, machine, commits, holes=holes):
            print(f"history: {line}")
        before = hist.snapshot(results) if args.export is not None else {}
        rc = hist.run(
            commits,
            repo=repo,
            config=conf,
            machine=args.machine,
            bench=selection(args.bench, skip),
            launch_method=args.launch_method,
            log_path=log,
        )
        if args.export is not None:
            copied = hist.export_changed(results, before, args.export)
            print(f"history: exported {len(copied)} files to {args.export}")
    if rc == 2:
        raise ToolError(f"some benchmarks failed (what was measured is saved); see {log}")
    if rc != 0:
        raise ToolError(f"asv run ended with {runner.exit_text(rc)}; see {log}")
    return EXIT_OK


def _torch_list(text: str | None) -> list[str]:
    if text is None:
        return []
    versions = [v for v in re.split(r"[\s,]+", text) if v]
    if not versions:
        raise UsageError(f"--torch lists no versions: {text!r}")
    return [hist.check_torch_version(v) for v in versions]


def run_plan(args) -> int:
    repo = runner.repo_root()
    shards = positive_int(args.shards, "SHARDS")
    torch = _torch_list(args.torch)
    commits = _commits(args, repo, args.branch, None)
    plan = hist.round_robin(commits, shards)
    existing = sorted(args.out.glob("shard-*.txt")) if args.out.is_dir() else []
    if existing:
        raise UsageError(f"{args.out} already holds {existing[0].name}")
    args.out.mkdir(parents=True, exist_ok=True)
    for i, part in enumerate(plan):
        runner.write_hashfile(args.out / f"shard-{i}.txt", part)
        print(f"shard {i}: {len(part)} commits, {part[0][:8]} .. {part[-1][:8]}")
    if len(plan) < shards:
        print(f"backfill-plan: {len(commits)} commits: {len(plan)} shards, not {shards}")
    if args.github_output is not None:
        with open(args.github_output, "a") as f:
            f.write(f"shards={json.dumps([str(i) for i in range(len(plan))])}\n")
            f.write(f"torch={json.dumps(torch)}\n")
            f.write(f"commits={len(commits)}\n")
    return 0


def run_local(args) -> int:
    repo = runner.repo_root()
    shards = positive_int(args.shards, "SHARDS")
    commits = _commits(args, repo, _branch(args.config), DEFAULT_N)
    _check_bench(args.bench)
    if args.torch is not None:
        _torch_list(args.torch)
    skip = _skip_families(args.skip_family)
    check_tools(args.bench, skip, args.config)
    with runner.checkout_lock(repo, "backfill-local"):
        store = config.results_dir(args.config)
        for line in repair(store, _results_machine(args.machine)):
            print(f"backfill-local: {line}")
        return backfill.run_local(
            repo,
            commits,
            shards,
            config=args.config,
            machine=args.machine,
            bench=args.bench,
            skip_family=args.skip_family if skip else None,
            launch_method=args.launch_method,
            torch=args.torch,
            workdir=args.workdir,
            accept_new_versions=args.accept_new_versions,
        )


def run_merge(args) -> int:
    plan = merge.plan_merge(args.into, args.shards, accept_new_versions=args.accept_new_versions)
    if not args.check:
        merge.apply_merge(plan)
    verb = "would merge" if args.check else "merged"
    print(f"merge-results: {verb} {len(args.shards)} shards into {args.into}: {plan.summary()}")
    return 0
