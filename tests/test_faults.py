"""Fault injection: every fault around a measurement ends in a verdict that says what
happened (exit 3, or 2 for bad input), never a pass, a hang or a traceback, and no stored
result is lost or damaged.

The slow tests drive the real command line (``python -m lossbench gate``, ``history``,
``backfill-local``) with real asv, end to end, on a scratch repository made from the
stand-in project ``tests/faults_project`` (pure Python: its asv environment builds in
seconds) and this checkout's ``tools/``. The faults: a timing worker that dies, hangs,
writes to its stdout or cannot import HEAD's package (``SOFTMAXLOSS_FAULT``, in HEAD's
worker only); a write killed or out of disk (``LOSSBENCH_FAILPOINT``, lossbench.files);
SIGKILL and Ctrl-C at three points; a missing tool, a dirty tree, a second gate, a config
with two environments, a damaged results file, another environment's results. After each,
the result files (``*.json`` under ``.asv/results``) are checked byte for byte, and a later
run must read them. docs/gate.md keeps the table of these scenarios.

The fast tests check the same rules one piece at a time (the command line's error
handling, the atomic write, the quarantine, the lock, the workers' bounded waits).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from gitrepo import git

from lossbench import families, files, gate, paired, results, runner
from lossbench.commands import main
from lossbench.errors import ToolError

ROOT = Path(__file__).resolve().parents[1]
PROJECT = Path(__file__).resolve().parent / "faults_project"
MACHINE = "faults"


# ---- the scratch repository ------------------------------------------------------------------


class Project:
    """A scratch repository of the stand-in project with BASE and HEAD committed (HEAD's
    package has ``FAULTY = True``), its own HOME and asv machine file."""

    def __init__(self, root: Path):
        self.repo = root / "repo"
        shutil.copytree(PROJECT, self.repo, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(
            ROOT / "tools", self.repo / "tools", ignore=shutil.ignore_patterns("__pycache__")
        )
        (self.repo / ".gitignore").write_text(".asv/\n__pycache__/\n*.egg-info/\nbuild/\n")
        self.home = root / "home"
        self.home.mkdir()
        self.env = {**os.environ, "HOME": str(self.home), "GITHUB_STEP_SUMMARY": ""}
        for name in ("SOFTMAXLOSS_FAULT", files.FAILPOINT, "MAKEFLAGS"):
            self.env.pop(name, None)
        git(self.repo, "init", "-q", "-b", "main")
        git(self.repo, "add", "-A")
        git(self.repo, "commit", "-qm", "base")
        self.base = git(self.repo, "rev-parse", "HEAD")
        self.head = self.commit("head", "FAULTY = False", "FAULTY = True")
        subprocess.run(
            [sys.executable, "-m", "asv", "machine", "--yes", "--machine", MACHINE],
            cwd=self.repo, env=self.env, check=True, capture_output=True,
        )  # fmt: skip

    def commit(self, message: str, old: str = "", new: str = "") -> str:
        """A commit that replaces ``old`` by ``new`` in the package (a comment if none)."""
        init = self.repo / "softmaxloss" / "__init__.py"
        text = init.read_text()
        init.write_text(text.replace(old, new) if old else text + f"# {message}\n")
        git(self.repo, "commit", "-qam", message)
        return git(self.repo, "rev-parse", "HEAD")

    def run(self, *args: str, env: dict | None = None, timeout: float = 600):
        """``python -m lossbench ARGS`` in the repository, as a user types it."""
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "lossbench", *args],
            cwd=self.repo, env={**self.env, **(env or {})}, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=timeout,
        )  # fmt: skip
        proc.seconds = time.monotonic() - start
        print(f"$ lossbench {' '.join(args)}  ({env or {}}) -> {proc.returncode}")
        print(proc.stdout[-4000:], proc.stderr[-4000:])
        return proc

    def gate(self, *args: str, base: str | None = None, env: dict | None = None, **kw):
        return self.run("gate", base or self.base, "--machine", MACHINE, *args, env=env, **kw)

    def start_gate(self, *args: str, base: str | None = None, env: dict | None = None):
        """The gate in a session of its own (a terminal's foreground job), output piped."""
        return subprocess.Popen(
            [sys.executable, "-m", "lossbench", "gate", base or self.base, "--machine", MACHINE,
             *args],
            cwd=self.repo, env={**self.env, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip

    @property
    def results_dir(self) -> Path:
        return self.repo / ".asv" / "results"

    def stored(self) -> dict[str, str]:
        """sha256 of every result file (``*.json``) under ``.asv/results``."""
        return {
            p.relative_to(self.results_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(self.results_dir.rglob("*.json"))
        }

    def readable(self) -> None:
        """Every stored file reads with asv's own reader, and no temporary file is left."""
        from asv import util
        from asv.results import Results

        for path in self.results_dir.rglob("*.json"):
            data = util.load_json(str(path))
            if path.name not in ("benchmarks.json", "machine.json"):
                assert Results.load(str(path)).commit_hash == data["commit_hash"]

    def wait_for_lock(self, seconds: float = 120) -> None:
        """Until nothing holds the checkout lock (an asv left running by a killed gate)."""
        path = self.repo / ".asv" / "lossbench.lock"
        deadline = time.monotonic() + seconds
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                assert time.monotonic() < deadline, "the checkout lock was never released"
                time.sleep(0.5)
            finally:
                os.close(fd)


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


def error_line(proc) -> str:
    """The one ``error:`` line on stderr (the command line's contract for a refusal)."""
    lines = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def until(proc, pattern: str, seconds: float = 300) -> list[str]:
    """The output lines of ``proc`` up to the first matching ``pattern`` (read as they come)."""
    seen, deadline = [], time.monotonic() + seconds
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            return seen
        assert time.monotonic() < deadline, "".join(seen)
    raise AssertionError(f"{pattern!r} never printed:\n{''.join(seen)}")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The scratch project with BASE and HEAD measured once by a clean gate (exit 0)."""
    project = Project(tmp_path_factory.mktemp("faults"))
    clean = project.gate()
    assert clean.returncode == 0, clean.stderr
    assert "time: 2 compared, 0 regressed" in clean.stdout
    return project


# ---- the gate's faults, end to end ----------------------------------------------------------


def fake_valgrind(tmp_path) -> dict:
    """PATH with a ``valgrind`` that does not run, first."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "valgrind").write_text("#!/bin/sh\nexit 1\n")
    (fake / "valgrind").chmod(0o755)
    return {"PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}


# (name, gate arguments, environment, exit status, what it says: regex on the output)
TIMING_FAULTS = [
    (
        "a timing worker dies (SIGKILL)",
        [],
        {"SOFTMAXLOSS_FAULT": "die"},
        3,
        r"NOT MEASURED: time: .*worker HEAD \(screen\) died \(killed by signal 9\) while timing",
    ),
    (
        "a timing worker hangs",
        ["--timeout-floor", "3"],
        {"SOFTMAXLOSS_FAULT": "hang"},
        3,
        r"NOT MEASURED: time: .*gave no answer within 3 s while timing \(a hang\): killed",
    ),
    (
        "a timing worker writes to its stdout",
        [],
        {"SOFTMAXLOSS_FAULT": "garbage"},
        3,
        r"NOT MEASURED: time: .*answered \"a stray line on the worker's stdout\" while timing",
    ),
    (
        "HEAD's package does not import in the worker",
        [],
        {"SOFTMAXLOSS_FAULT": "import"},
        3,
        r"NOT MEASURED: time: .*does not import \(ImportError: softmaxloss",
    ),
    (
        "the disk is full as the timings are stored",
        [],
        {files.FAILPOINT: "store-enospc"},
        3,
        r"NOT MEASURED: time: the timings of \w{8} were not stored: could not write "
        r".*: No space left on device",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, args, env, status, says", TIMING_FAULTS, ids=[t[0] for t in TIMING_FAULTS]
)
def test_a_timing_fault_is_named_and_fails_closed(project, name, args, env, status, says):
    before = project.stored()
    proc = project.gate(*args, env=env)
    assert proc.returncode == status
    assert re.search(says, proc.stdout, re.M), proc.stdout
    assert proc.stdout.splitlines()[-1] == (
        "gate: exit 3 (0 ok, 1 regression, 2 bad input, 3 not everything measured)"
    )
    assert "so this is no pass" in proc.stdout
    no_traceback(proc)
    assert project.stored() == before  # a failed run stores nothing
    assert proc.seconds < 120


REFUSALS = [
    (
        "valgrind missing (it does not run)",
        [],
        "fake-valgrind",
        3,
        r"error: valgrind does not run \(CalledProcessError\): the families cycles,instructions "
        r"cannot be measured; install it \(make valgrind\), or leave them out with "
        r"--skip-family cycles,instructions$",
    ),
    (
        "uncommitted changes to the package",
        [],
        "dirty",
        2,
        r"error: uncommitted changes to the package \(softmaxloss/__init__.py\): the gate "
        r"measures the committed HEAD; commit them, or pass --allow-dirty",
    ),
    (
        "a second gate in the same checkout",
        [],
        "locked",
        3,
        r"error: .*lossbench.lock is held by gate \(pid \d+, since [\d:]+\) \(or an asv it "
        r"started\): one gate, history, backfill or bisect per checkout at a time",
    ),
    (
        "a config that makes two environments",
        ["--config", "two-envs.conf.json"],
        "two-envs",
        2,
        r"error: .*two-envs.conf.json makes 2 asv environments \(.*\): the gate compares one",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, args, setup, status, says", REFUSALS, ids=[t[0] for t in REFUSALS])
def test_what_cannot_be_measured_is_refused_before_any_work(
    project, tmp_path, name, args, setup, status, says
):
    env, cleanup = {}, []
    if setup == "fake-valgrind":
        env = fake_valgrind(tmp_path)
    elif setup == "dirty":
        init = project.repo / "softmaxloss" / "__init__.py"
        text = init.read_text()
        init.write_text(text + "# not committed\n")
        cleanup.append(lambda: init.write_text(text))
    elif setup == "locked":
        fd = os.open(project.repo / ".asv" / "lossbench.lock", os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"gate (pid {os.getpid()}, since 12:00:00)\n".encode(), 0)
        cleanup.append(lambda: os.close(fd))
    elif setup == "two-envs":
        conf = json.loads(
            re.sub(r"^\s*//.*$", "", (project.repo / "asv.conf.json").read_text(), flags=re.M)
        )
        conf["matrix"]["req"]["wheel"] = ["", "0.45.1"]
        (project.repo / "two-envs.conf.json").write_text(json.dumps(conf))
        cleanup.append((project.repo / "two-envs.conf.json").unlink)
    before = project.stored()
    log = project.repo / ".asv" / "gate" / "gate.log"
    log_size = log.stat().st_size
    try:
        proc = project.gate(*args, env=env)
        assert proc.returncode == status
        assert re.search(says, error_line(proc)), proc.stderr
        assert proc.stdout == ""  # no verdict: refused
        no_traceback(proc)
        assert project.stored() == before
        assert log.stat().st_size == log_size  # asv never started
        if setup == "fake-valgrind":  # going on without those families, said in the summary
            skipped = project.gate("--skip-family", "instructions,cycles", env=env)
            assert skipped.returncode == 0
            assert "not measured, on request: instructions, cycles (--skip-family)" in (
                skipped.stdout
            )
            assert not re.search(r"^(instructions|cycles):", skipped.stdout, re.M)
        if setup == "dirty":  # the committed HEAD, said in the summary
            allowed = project.gate("--allow-dirty")
            assert allowed.returncode == 0
            assert re.search(r"^note: uncommitted changes to the package not measured: "
                             r"softmaxloss/__init__.py$", allowed.stdout, re.M)  # fmt: skip
    finally:
        for undo in cleanup:
            undo()


@pytest.mark.slow
def test_the_summary_says_how_busy_the_machine_was(project):
    """A process of the test spinning on one core beside the gate (a CI neighbour): the
    summary gives the cores other work kept busy during the paired timings, the gate's own
    workers left out (here one of them hangs, so the timings last a few seconds)."""
    spin = "import time\nend = time.time() + 60\nwhile time.time() < end: pass\n"
    burner = subprocess.Popen([sys.executable, "-c", spin])
    try:
        proc = project.gate("--timeout-floor", "6", env={"SOFTMAXLOSS_FAULT": "hang"})
    finally:
        burner.kill()
        burner.wait()
    seen = re.search(
        r"^note: other work during the paired timings: ([\d.]+) of (\d+) cores \(median; "
        r"[\d.]+-[\d.]+ over \d+ samples of 2 s\)$", proc.stdout, re.M
    )  # fmt: skip
    assert seen, proc.stdout
    assert 0.5 <= float(seen.group(1)) <= int(seen.group(2))


@pytest.mark.slow
def test_asv_killed_or_out_of_disk_while_storing_loses_nothing(project):
    """asv's own writes (lossbench.asv_atomic): killed after the temporary file is
    written, or out of disk, the stored results stay as they were; the next run measures
    the commit and reads everything."""
    head = project.commit("a comment: measured by asv again")
    before = project.stored()
    killed = project.gate(env={files.FAILPOINT: f"asv-store-kill:{head[:8]}-"})
    assert killed.returncode == 3
    assert re.search(r"error: asv run ended with signal 9; see .*gate.log$", error_line(killed))
    assert project.stored() == before
    assert list((project.results_dir / MACHINE).glob(".*.tmp"))  # the write it cut short
    full = project.gate(env={files.FAILPOINT: f"asv-store-enospc:{head[:8]}-"})
    assert full.returncode == 3
    assert re.search(r"error: the disk is full \(.*No space left on device\)", error_line(full))
    assert project.stored() == before
    no_traceback(killed), no_traceback(full)
    again = project.gate()
    assert again.returncode == 0, again.stdout
    assert not list((project.results_dir / MACHINE).glob(".*.tmp"))
    assert set(before) < set(project.stored())  # HEAD's results added, nothing lost
    project.readable()


@pytest.mark.slow
def test_killed_at_three_points_the_next_run_reads_everything(project):
    """SIGKILL of the gate's process group during asv's run, during the paired timings,
    and while the gate stores them: each time the stored results read, and a new gate passes.
    Ctrl-C during the timings: exit 3, "interrupted", nothing stored."""
    # 1. during asv's run (asv runs in a group of its own: it finishes as an orphan and
    #    holds the checkout lock until then)
    project.commit("measured by an asv whose gate is killed")
    gate_ = project.start_gate()
    until(gate_, r"For softmaxloss commit")
    os.killpg(gate_.pid, signal.SIGKILL)
    gate_.wait()
    project.wait_for_lock()
    project.readable()
    assert project.gate().returncode == 0
    # 2. during the paired timings (a worker that hangs keeps them going)
    before = project.stored()
    hung = {"SOFTMAXLOSS_FAULT": "hang"}
    gate_ = project.start_gate("--timeout-floor", "60", env=hung)
    until(gate_, r"^paired: 2 cases")
    os.killpg(gate_.pid, signal.SIGKILL)
    gate_.wait()
    assert project.stored() == before
    project.readable()
    # 3. Ctrl-C there: one line, exit 3
    gate_ = project.start_gate("--timeout-floor", "60", env=hung)
    until(gate_, r"^paired: 2 cases")
    os.killpg(gate_.pid, signal.SIGINT)
    out = gate_.stdout.read()
    assert gate_.wait(timeout=60) == 3
    assert re.search(r"^python -m lossbench gate: interrupted: nothing decided", out, re.M), out
    assert "Traceback" not in out
    assert project.stored() == before
    # 4. while storing the timings (the tools' own write, killed before its rename)
    killed = project.gate(env={files.FAILPOINT: "store-kill:results"})
    assert killed.returncode == -signal.SIGKILL
    assert project.stored() == before
    project.readable()
    again = project.gate()
    assert again.returncode == 0 and "time: 2 compared" in again.stdout


@pytest.mark.slow
def test_a_damaged_results_file_is_moved_aside_and_measured_again(project):
    head = git(project.repo, "rev-parse", "HEAD")
    assert project.gate().returncode == 0  # HEAD measured
    head_file = next((project.results_dir / MACHINE).glob(f"{head[:8]}-*.json"))
    damaged = head_file.read_bytes()[:100]
    head_file.write_bytes(damaged)
    proc = project.gate()
    assert proc.returncode == 0, proc.stdout
    moved = list(head_file.parent.glob(head_file.name + ".damaged-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == damaged  # kept, never deleted
    assert re.search(rf"{re.escape(str(head_file))} could not be read \(.*\): moved aside to "
                     rf"{re.escape(moved[0].name)}", proc.stderr)  # fmt: skip
    project.readable()


@pytest.mark.slow
def test_another_environments_results_for_the_same_commit_are_left_alone(project):
    """``make torch-versions`` leaves a commit results of a second environment in the same
    folder: the gate reads its own config's environment."""
    head = git(project.repo, "rev-parse", "HEAD")
    assert project.gate().returncode == 0  # HEAD measured
    head_file = next((project.results_dir / MACHINE).glob(f"{head[:8]}-*.json"))
    data = json.loads(head_file.read_text())
    data["env_name"] = "virtualenv-py3.11-other"
    other = head_file.with_name(f"{head[:8]}-virtualenv-py3.11-other.json")
    other.write_text(json.dumps(data))
    try:
        proc = project.gate()
        assert proc.returncode == 0, proc.stdout
    finally:
        other.unlink()


@pytest.mark.slow
def test_a_benchmark_that_hangs_under_asv_is_a_failure_not_a_hang(project):
    """asv's own timeout (5 s for the precision benchmark here) ends a benchmark that hangs
    in HEAD's package: HEAD failed, exit 3."""
    project.commit("a hang under asv")
    proc = project.gate("--bench", r"^bench_precision\.", env={"SOFTMAXLOSS_FAULT": "asv-hang"})
    assert proc.returncode == 3
    assert re.search(r"^FAILED on HEAD: 2 \(bench_precision", proc.stdout, re.M), proc.stdout
    no_traceback(proc)
    assert proc.seconds < 300


@pytest.mark.slow
def test_history_refuses_a_missing_tool_before_any_work(project, tmp_path):
    before = project.stored()
    proc = project.run("history", "-n", "2", "--machine", MACHINE, env=fake_valgrind(tmp_path))
    assert proc.returncode == 3
    assert "valgrind does not run" in error_line(proc) and "--skip-family" in error_line(proc)
    assert project.stored() == before


@pytest.mark.slow
def test_backfill_keeps_finished_shards_and_names_a_failed_one(project):
    """Shard 1 fails before exporting (its asv machine file is broken): the backfill names
    it with its own error and merges nothing; run again, it keeps shard 0 and runs shard 1."""
    project.wait_for_lock()
    for i in range(3):
        project.commit(f"history {i}")
    work = project.repo / ".asv" / "backfill"
    bad = work / "shard-1" / "home" / ".asv-machine.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{ not json")
    args = ["backfill-local", "-n", "3", "--shards", "2", "--machine", MACHINE]
    first = project.run(*args, "--skip-family", "instructions,cycles")
    assert first.returncode == 3
    line = error_line(first)
    assert re.search(r"shard 1 ended with exit 2 \(.*is not valid JSON; log: .*\): nothing "
                     r"merged; shards 0 finished and are kept", line), line  # fmt: skip
    done = (work / "shard-0" / "done.json").read_bytes()
    bad.unlink()
    second = project.run(*args, "--skip-family", "instructions,cycles")
    assert second.returncode == 0, second.stderr
    assert "shards 0 finished before" in second.stdout
    assert "[shard 0]" not in second.stdout  # not run again
    assert (work / "shard-0" / "done.json").read_bytes() == done
    assert (work / "shard-1" / "done.json").is_file()
    project.readable()


# ---- the rules one piece at a time (fast) ---------------------------------------------------


def test_bisect_refuses_a_good_commit_off_the_first_parent_line(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "f").write_text("0")
    git(repo, "add", "f")
    git(repo, "commit", "-qm", "root")
    git(repo, "checkout", "-qb", "side")
    (repo / "g").write_text("1")
    git(repo, "add", "g")
    git(repo, "commit", "-qm", "side")
    side = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "main")
    (repo / "f").write_text("2")
    git(repo, "commit", "-qam", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge", "side")
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "bisect", side, "HEAD", "--bench", "x",
         "--repo", str(repo)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert re.search(r"error: GOOD '\w+' is not on BAD 'HEAD''s first-parent line", proc.stderr)
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "content, why",
    [
        ("{", r"not valid JSON"),
        ('{"commit_hash": "x", "env_name": "e", "params": [], "result_columns": '
         '["result", "version"], "results": {}}', r"not an asv result file \(AttributeError"),
        ('{"commit_hash": "' + "0" * 40 + '", "env_name": "e", "params": {"machine": "m"}, '
         '"result_columns": [], "results": []}', r"not an asv result file \(no results object\)"),
    ],
)  # fmt: skip
def test_merge_refuses_a_malformed_shard_file_in_one_line(tmp_path, content, why):
    shard = tmp_path / "shard"
    (shard / "m").mkdir(parents=True)
    (shard / "benchmarks.json").write_text('{"b.x": {"version": "1"}, "version": 2}')
    (shard / "m" / "machine.json").write_text('{"machine": "m", "version": 1}')
    (shard / "m" / "00000000-e.json").write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "lossbench", "merge-results", "--into", str(tmp_path / "store"),
         str(shard)],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and re.search(why, proc.stderr), proc.stderr
    assert not (tmp_path / "store").exists()


def _command(monkeypatch, capsys, raises):
    """``main(["machine"])`` with the command replaced by one that raises ``raises``."""
    from lossbench.commands import machine

    def boom(args):
        print("partial output")
        raise raises

    monkeypatch.setattr(machine, "run", boom)
    rc = main(["machine"])
    return rc, capsys.readouterr()


@pytest.mark.parametrize(
    "raises, says",
    [
        (ToolError("asv run ended with signal 9"), r"error: asv run ended with signal 9$"),
        (KeyboardInterrupt(), r"interrupted: nothing decided \(stored results are intact\)$"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), r"error: a pipe broke .*: a process it "
                                                       r"talked to died$"),
        (KeyError("softmaxloss"), r"internal error: KeyError: 'softmaxloss' \(traceback: .*\)$"),
    ],
)  # fmt: skip
def test_every_fault_is_one_line_and_exit_3(monkeypatch, capsys, raises, says):
    """A worker's broken pipe is no longer "the reader left" (it passed as exit 0); a bug
    is one line with its traceback kept in a file."""
    rc, out = _command(monkeypatch, capsys, raises)
    assert rc == 3
    assert len(out.err.splitlines()) == 1 and re.search(says, out.err), out.err
    if isinstance(raises, KeyError):
        kept = Path(re.search(r"traceback: (.*)\)$", out.err).group(1))
        assert "KeyError" in kept.read_text()
        kept.unlink()


def test_a_reader_that_left_stdout_is_not_a_pass(monkeypatch, capsys):
    class Gone:
        def write(self, text):
            return len(text)

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def fileno(self):
            return devnull

    devnull = os.open(os.devnull, os.O_WRONLY)
    monkeypatch.setattr(sys, "stdout", Gone())
    rc, out = _command(monkeypatch, capsys, BrokenPipeError(errno.EPIPE, "Broken pipe"))
    assert rc == 3 and out.err == ""  # quiet, but no pass


def test_an_atomic_write_leaves_the_old_file_when_the_disk_is_full(tmp_path, monkeypatch):
    dest = tmp_path / "r.json"
    dest.write_text("old")
    monkeypatch.setenv(files.FAILPOINT, "store-enospc")
    with pytest.raises(ToolError, match=rf"could not write {dest}: No space left on device"):
        files.write_atomic(dest, b"new")
    assert dest.read_text() == "old" and sorted(tmp_path.iterdir()) == [dest]
    monkeypatch.setenv(files.FAILPOINT, "store-enospc:elsewhere")  # another path: no fault
    files.write_atomic(dest, b"new")
    assert dest.read_text() == "new"


def test_an_atomic_write_killed_before_its_rename_leaves_the_old_file(tmp_path):
    dest = tmp_path / "r.json"
    dest.write_text("old")
    code = (
        "import sys; sys.path.insert(0, sys.argv[2]); from lossbench import files; "
        "files.write_atomic(sys.argv[1], b'new')"
    )
    env = {**os.environ, files.FAILPOINT: "store-kill"}
    proc = subprocess.run([sys.executable, "-c", code, str(dest), str(ROOT / "tools")], env=env)
    assert proc.returncode == -signal.SIGKILL
    assert dest.read_text() == "old"
    (tmp,) = tmp_path.glob(".r.json.*.tmp")
    assert tmp.read_bytes() == b"new"
    assert files.remove_stale_temporaries(tmp_path) == [tmp] and dest.exists()


def _asv_result_file(folder: Path, commit: str, values: dict) -> Path:
    data = {
        "commit_hash": commit, "env_name": "env", "version": 2, "date": 0, "python": "3.11",
        "params": {"machine": "m", "python": "3.11"}, "requirements": {},
        "result_columns": ["result", "params", "version", "started_at", "duration"],
        "results": {name: [v, [["'a'", "'b'"]], "v", 0, 1.0] for name, v in values.items()},
    }  # fmt: skip
    path = folder / "m" / f"{commit[:8]}-env.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_quarantine_moves_aside_what_asv_cannot_read_and_keeps_the_rest(tmp_path):
    good = _asv_result_file(tmp_path, "a" * 40, {"b.track_x": [1.0, 2.0]})
    bad = _asv_result_file(tmp_path, "b" * 40, {"b.track_x": [1.0, 2.0]})
    damaged = bad.read_text()[:50]
    bad.write_text(damaged)
    (tmp_path / "m" / ".bbbbbbbb-env.json.x1.tmp").write_text("{")
    moved = results.quarantine(tmp_path, "m")
    assert [(path, why[:13]) for path, _, why in moved] == [(bad, "Error parsing")]
    assert not bad.exists() and moved[0][1].read_text() == damaged
    assert moved[0][1].name.startswith(bad.name + ".damaged-")
    assert good.exists() and not list((tmp_path / "m").glob(".*.tmp"))
    assert results.quarantine(tmp_path, "m") == []


def test_holes_are_reopened_and_measurements_kept(tmp_path):
    """A benchmark stored with no value at all (its tool was missing: NaN or null
    everywhere) is removed so that asv measures it again; one with a value stays."""
    nan = math.nan
    commit = "c" * 40
    path = _asv_result_file(
        tmp_path,
        commit,
        {
            "bench_instructions.I.track_forward": [nan, nan],
            "bench_instructions.C.track_cycles": None,
            "bench_instructions.I.track_backward": [nan, 5.0],
            "bench_memory.M.track_bytes": [nan, nan],
        },
    )
    removed = results.reopen_holes(tmp_path, "m", [commit], r"bench_instructions\.")
    assert removed == [f"{commit[:8]}:bench_instructions.C.track_cycles",
                       f"{commit[:8]}:bench_instructions.I.track_forward"]  # fmt: skip
    kept = json.loads(path.read_text())["results"]
    assert sorted(kept) == ["bench_instructions.I.track_backward", "bench_memory.M.track_bytes"]


def test_the_checkout_lock_names_its_holder_and_two_clones_each_have_theirs(tmp_path):
    held = rf"is held by gate \(pid {os.getpid()}, since [\d:]+\)"
    with runner.checkout_lock(tmp_path / "a", "gate"):
        with pytest.raises(ToolError, match=rf"lossbench.lock {held}"):
            runner.checkout_lock(tmp_path / "a", "history").__enter__()
        with runner.checkout_lock(tmp_path / "b", "gate"):
            pass
    with runner.checkout_lock(tmp_path / "a", "history"):  # released
        pass


def test_a_silent_process_is_stopped_at_its_idle_limit(tmp_path):
    proc = runner.line_process(
        [sys.executable, "-c", "print('one', flush=True); import time; time.sleep(60)"],
        tmp_path,
        own_group=True,
    )
    lines = []
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        for line in runner.lines_within(proc.stdout, 2.0):
            lines.append(line)
    runner.stop(proc, grace=1)
    assert lines == ["one\n"] and time.monotonic() - start < 15 and proc.poll() is not None


def test_a_family_selected_and_never_compared_is_a_fault(tmp_path):
    report = gate.Report()
    report.check_families({"memory", "instructions"})
    assert report.exit_code == 3
    assert [f.split(":")[0] for f in report.faults] == ["instructions", "memory"]
    skipped = gate.Report(skipped_families=["instructions"])
    skipped.check_families({"instructions"})
    assert skipped.exit_code == 0


def test_check_tools_refuses_only_the_families_the_selection_needs(monkeypatch):
    monkeypatch.setattr(families, "tool_missing", lambda tool: f"{tool} is not installed")
    with pytest.raises(ToolError, match=r"valgrind is not installed: the families "
                                        r"cycles,instructions cannot be measured"):  # fmt: skip
        gate.check_tools(gate.GATE_BENCH, (), None)
    gate.check_tools(gate.GATE_BENCH, ("instructions", "cycles"), None)  # left out: fine
    gate.check_tools(r"^bench_memory\.", (), None)  # needs no tool


# A worker's faults with real worker processes (no asv): the stand-in package as both
# commits' trees, HEAD's with FAULTY = True.


@pytest.fixture
def trees(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tools").symlink_to(ROOT / "tools")
    (repo / "benchmarks").symlink_to(PROJECT / "benchmarks")
    out = []
    for name, faulty in (("base", False), ("head", True)):
        tree = tmp_path / "trees" / name
        shutil.copytree(PROJECT / "softmaxloss", tree / "softmaxloss")
        init = tree / "softmaxloss" / "__init__.py"
        init.write_text(init.read_text().replace("FAULTY = False", f"FAULTY = {faulty}"))
        out.append(tree)
    return repo, out


@pytest.mark.parametrize(
    "fault, says",
    [
        ("die", r"worker HEAD \(screen\) died \(killed by signal 9\) while timing"),
        ("hang", r"worker HEAD \(screen\) gave no answer within 2 s while timing \(a hang\)"),
        ("garbage", r"answered \"a stray line on the worker's stdout\" while timing, not a JSON"),
        ("import", r"worker HEAD \(screen\): its softmaxloss .* does not import \(ImportError"),
    ],
)
def test_real_workers_that_fail_name_the_case_and_the_rest_are_measured(
    trees, monkeypatch, tmp_path, fault, says
):
    """Each case gets a fresh worker pair after a fault; a pair that cannot start names
    every case left. Nothing here waits past its bound."""
    repo, (base, head) = trees
    monkeypatch.setattr(
        paired, "extract_tree", lambda repo_, commit, dest: {"b": base, "h": head}[commit]
    )
    monkeypatch.setenv("SOFTMAXLOSS_FAULT", fault)
    cases = [paired.Case("bench_time.TimeSoftmaxLoss.time_forward", (f"'{impl}'", "'small'"), 20)
             for impl in ("manual", "fused")]  # fmt: skip
    settings = paired.Settings(timeout_floor=2, start_timeout=60)
    start = time.monotonic()
    outcomes = paired.measure(repo, "b", "h", cases, python=sys.executable,
                              workdir=tmp_path / "work", settings=settings)  # fmt: skip
    assert time.monotonic() - start < 60
    assert all(re.search(says, o.fault or "") for o in outcomes), [o.fault for o in outcomes]
    assert not any(o.regressed for o in outcomes)
    report = gate.Report()
    gate.add_paired(report, outcomes, settings)
    assert report.exit_code == 3 and len(report.faults) == 1  # one line, both cases named


def test_the_load_seen_is_other_work_only(tmp_path):
    """/proc/stat's busy ticks less this process tree's (/proc/<pid>/stat utime + stime,
    descendants included, a parenthesis in a name too), in cores."""
    from lossbench import load

    proc = tmp_path / "proc"
    rows = {1: (0, "init", 5, 5), os.getpid(): (1, "py (gate)", 100, 20),
            70001: (os.getpid(), "worker", 300, 30), 70002: (70001, "grandchild", 7, 3),
            70003: (1, "other", 900, 90)}  # fmt: skip
    for pid, (ppid, name, utime, stime) in rows.items():
        (proc / str(pid)).mkdir(parents=True)
        fields = ["S", str(ppid)] + ["0"] * 9 + [str(utime), str(stime)] + ["0"] * 5
        (proc / str(pid) / "stat").write_text(f"{pid} ({name}) {' '.join(fields)}\n")
    assert load.tree_ticks(os.getpid(), str(proc)) == 120 + 330 + 10  # by a scan
    for pid in rows:  # the kernel's lists of children: a walk
        (proc / str(pid) / "task" / str(pid)).mkdir(parents=True)
        kids = [str(c) for c, (p, *_) in rows.items() if p == pid and c != pid]
        (proc / str(pid) / "task" / str(pid) / "children").write_text(" ".join(kids))
    (proc / "70003" / "stat").unlink()  # exited meanwhile: left out, the walk goes on
    assert load.tree_ticks(os.getpid(), str(proc)) == 120 + 330 + 10
    assert load.tree_ticks(1, str(proc)) == 10 + 460
    # 1000 ticks on 2 cores, 700 busy, 200 of them ours: 500 / 1000 * 2 = 1.0 core
    assert load.Sampler.other_cores((0, 0, 0), (1000, 700, 200), 2) == pytest.approx(1.0)
    assert load.Sampler.other_cores((0, 0, 0), (1000, 100, 200), 2) == 0.0  # never below 0
    assert load.Sampler.other_cores((5, 0, 0), (5, 0, 0), 2) is None


def test_docs_list_every_fault_scenario_with_its_exit_status():
    """docs/gate.md's table of faults has a row for each scenario scripted here, with the
    exit status the test asserts."""
    text = (ROOT / "docs" / "gate.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3:
            rows[cells[0]] = cells[2]
    for name, _, _, status, _ in TIMING_FAULTS + REFUSALS:
        assert rows.get(name) == str(status), name
