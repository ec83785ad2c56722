"""Runs asv (as a subprocess, from the repository root) for the gate, the study and bisect.

asv's own output goes to a log file; only its per-commit progress lines are echoed, so a
command's terminal output stays a few lines plus its table. Git revisions are resolved
here so that a bad one is one line, not an asv traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence


class SuiteError(Exception):
    """An error the command line reports as one line (exit status 2)."""


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
        bufsize=1,
    )


def git(repo: str, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["git failed"])[-1]
        raise SuiteError(f"git {' '.join(args)}: {msg}")
    return proc.stdout.strip()


def resolve(repo: str, rev: str) -> str:
    """The full hash of commit ``rev``; a one-line error if there is no such commit."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise SuiteError(f"{rev!r} is not a commit of this repository")
    return proc.stdout.strip()


def is_ancestor(repo: str, older: str, newer: str) -> bool:
    proc = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=repo, capture_output=True
    )
    return proc.returncode == 0


def results_dir(config_file: str) -> str:
    """The config's ``results_dir``, absolute (read by the one asv config reader)."""
    from softmaxloss.errors import CommandError
    from softmaxloss.suite import config

    try:
        return str(config.load(config_file).results_dir)
    except CommandError as exc:
        raise SuiteError(str(exc)) from None


# asv's progress lines: per commit ("[ 12.50%] · For softmaxloss commit 1a2b3c4d ..."), the
# environment steps, and asv find's search ("· Testing <---O---->", "Greatest regression").
_PROGRESS = re.compile(
    r"^\[\s*[\d.]+%\] · (For |Building|Installing)|^· (Creating|Discovering)"
    r"|^·+ (Testing|Greatest|For \S+ commit)"
)


def run_asv(
    args: Sequence[str],
    repo: str,
    log_path: str,
    echo: Callable[[str], None] | None = None,
    env: dict | None = None,
) -> int:
    """``python -m asv ARGS`` in ``repo``; output appended to ``log_path``; returns its exit.

    asv exits 1 when ``-b`` selects nothing ("No benchmarks selected"); that is returned as
    0: a selection without, say, timings is not an error.
    """
    cmd = [sys.executable, "-m", "asv", *args]
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        start = time.monotonic()
        proc = line_process(cmd, repo, env)
        assert proc.stdout is not None
        nothing = False
        for line in proc.stdout:
            log.write(line)
            nothing = nothing or line.startswith("· No benchmarks selected")
            if echo is not None and _PROGRESS.search(line):
                echo(line.rstrip())
        rc = proc.wait()
        log.write(f"# exit {rc} after {time.monotonic() - start:.0f} s\n")
    return 0 if rc == 1 and nothing else rc


def write_hashfile(path: str, hashes: Sequence[str]) -> str:
    with open(path, "w") as f:
        f.write("".join(h + "\n" for h in hashes))
    return path
