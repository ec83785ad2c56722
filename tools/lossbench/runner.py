"""The one runner of git and asv: every command that runs either goes through here.

asv's own output goes to a log file; the caller sees each line through ``on_line`` (to
echo progress, count skips, find an answer: ``lossbench.asv_output`` knows asv's lines).
Git revisions are resolved here, so that a bad one is one line, not an asv traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from lossbench.errors import ToolError, UsageError


def line_process(cmd: Sequence[str], cwd, env: dict | None = None) -> subprocess.Popen:
    """``cmd`` started with its stdout and stderr merged into one line-buffered text pipe,
    no stdin (asv must never wait for an answer)."""
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
    )


def git(repo, *args: str, env: dict | None = None) -> str:
    """``git ARGS`` in ``repo``: its output without the trailing newline; ToolError naming
    the command and git's last line when it fails."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except OSError as exc:  # no git, or no such folder
        raise ToolError(f"git {' '.join(args)} in {repo}: {exc.strerror}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        raise ToolError(f"git {' '.join(args)}: {detail}")
    return proc.stdout.rstrip("\n")


def repo_root() -> Path:
    """The top folder of the git repository of the current folder; UsageError outside one."""
    try:
        return Path(git(Path.cwd(), "rev-parse", "--show-toplevel"))
    except ToolError:
        raise UsageError("not inside a git repository") from None


def resolve(repo, rev: str, what: str = "revision") -> str:
    """The full hash of commit ``rev``; UsageError naming it when there is no such commit."""
    if not rev or rev.startswith("-"):
        raise UsageError(f"{what} {rev!r} is not a commit of this repository")
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UsageError(f"{what} {rev!r} is not a commit of this repository")
    return proc.stdout.strip()


def is_ancestor(repo, older: str, newer: str) -> bool:
    proc = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=repo, capture_output=True
    )
    return proc.returncode == 0


def first_parent(repo, commit: str) -> str | None:
    """``commit``'s first parent; None for a root commit."""
    parents = git(repo, "rev-list", "--parents", "-n", "1", commit).split()[1:]
    return parents[0] if parents else None


def write_hashfile(path, hashes: Sequence[str]) -> str:
    """A ``HASHFILE:`` list for asv: one commit a line."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(h + "\n" for h in hashes))
    return str(path)


def asv_args(command: str, config, machine=None, launch_method=None) -> list[str]:
    """``asv COMMAND`` with the options every run of the tools gives it: the config, the
    machine and launch method when chosen, benchmarks' stderr shown."""
    args = [command, "--config", str(config), "--show-stderr"]
    args += ["--machine", machine] if machine else []
    return args + (["--launch-method", launch_method] if launch_method else [])


def run_asv(
    args: Sequence[str],
    *,
    repo,
    log_path,
    on_line: Callable[[str], None] | None = None,
    env: dict | None = None,
) -> int:
    """``python -m asv ARGS`` in ``repo``; output appended to ``log_path``, each line also
    handed to ``on_line``; returns asv's exit status.

    asv exits 1 when ``-b`` selects nothing ("No benchmarks selected"); that is returned as
    0: a selection without, say, timings is not an error.
    """
    cmd = [sys.executable, "-m", "asv", *args]
    env = {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        start = time.monotonic()
        proc = line_process(cmd, repo, env)
        nothing = False
        for line in proc.stdout:
            log.write(line)
            log.flush()
            line = line.rstrip("\n")
            nothing = nothing or line.startswith("· No benchmarks selected")
            if on_line is not None:
                on_line(line)
        rc = proc.wait()
        log.write(f"# exit {rc} after {time.monotonic() - start:.0f} s\n")
    return 0 if rc == 1 and nothing else rc


def ensure_machine(machine: str | None, *, log_path) -> None:
    """Writes asv's machine file entry for ``machine`` (auto-detected fields) when missing,
    so that asv never asks. An existing entry is left as it is: CI writes fixed fields for
    its hardware classes."""
    path = Path(os.environ.get("HOME", "~")).expanduser() / ".asv-machine.json"
    if path.is_file():
        try:
            known = json.loads(path.read_text())
        except ValueError:
            raise UsageError(f"{path} is not valid JSON") from None
        if machine is None or machine in known:
            return
    args = ["machine", "--yes", *(["--machine", machine] if machine else [])]
    if run_asv(args, repo=".", log_path=log_path) != 0:
        raise ToolError(f"asv machine failed; see {log_path}")
