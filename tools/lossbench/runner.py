"""The one runner of git and asv: every command that runs either goes through here.

asv's own output goes to a log file; the caller sees each line through ``on_line`` (to
echo progress, count skips, find an answer: ``lossbench.asv_output`` knows asv's lines).
Git revisions are resolved here, so that a bad one is one line, not an asv traceback.

Every wait is bounded and every fault ends in a ``ToolError`` naming it:

* asv runs as ``python -m lossbench.asv_atomic`` (its files written whole or not at all), in
  a process group of its own that dies with this process; an asv that prints nothing for
  longer than the longest timeout asv itself enforces (``idle_limit``) is killed, and so is
  one left behind by Ctrl-C;
* :func:`checkout_lock`: one command that runs asv or writes results per checkout at a time.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from lossbench.errors import ToolError, UsageError

# The file descriptors of the checkout locks this process holds (checkout_lock): asv inherits
# them, so a lock outlives a command killed while its asv still runs.
_LOCK_FDS: list[int] = []


def line_process(
    cmd: Sequence[str], cwd, env: dict | None = None, *, own_group: bool = False
) -> subprocess.Popen:
    """``cmd`` started with its stdout and stderr merged into one line-buffered text pipe,
    no stdin (asv must never wait for an answer). ``own_group``: in a process group of its
    own (so that :func:`stop` reaches its children too), holding this process's checkout
    locks for as long as it lives."""
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
        start_new_session=own_group,
        pass_fds=tuple(_LOCK_FDS) if own_group else (),
    )


def stop(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Ends ``proc`` and its process group (when it leads one): SIGTERM, then SIGKILL after
    ``grace`` seconds."""
    if proc.poll() is not None:
        return
    try:
        group = os.getpgid(proc.pid)
    except OSError:
        group = None
    own = group is not None and group == proc.pid

    def send(sig):
        with suppress(OSError):
            os.killpg(group, sig) if own else proc.send_signal(sig)

    send(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait()


def lines_within(stream, idle: float | None) -> Iterator[str]:
    """The lines of ``stream``; ``TimeoutError`` when none comes for ``idle`` seconds
    (``None``: wait for ever). A reader thread does the blocking reads."""
    if idle is None:
        yield from stream
        return
    lines: queue.Queue = queue.Queue()

    def pump():
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=idle)
        except queue.Empty:
            raise TimeoutError(idle) from None
        if line is None:
            return
        yield line


GIT_TIMEOUT = 600  # seconds: a local git command that takes longer is stuck


def git(repo, *args: str, env: dict | None = None) -> str:
    """``git ARGS`` in ``repo``: its output without the trailing newline; ToolError naming
    the command and git's last line when it fails."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=repo, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=GIT_TIMEOUT,
        )  # fmt: skip
    except OSError as exc:  # no git, or no such folder
        raise ToolError(f"git {' '.join(args)} in {repo}: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"git {' '.join(args)} in {repo}: no answer in {GIT_TIMEOUT} s") from None
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
        timeout=GIT_TIMEOUT,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise UsageError(f"{what} {rev!r} is not a commit of this repository")
    return proc.stdout.strip()


def is_ancestor(repo, older: str, newer: str) -> bool:
    proc = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=repo, capture_output=True,
        timeout=GIT_TIMEOUT,
    )  # fmt: skip
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


def exit_text(rc: int) -> str:
    """``exit N``, or ``signal N`` (killed) for a negative status."""
    return f"signal {-rc}" if rc < 0 else f"exit {rc}"


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
    idle_limit: float | None = None,
) -> int:
    """``python -m asv ARGS`` in ``repo`` (through :mod:`lossbench.asv_atomic`); output
    appended to ``log_path``, each line also handed to ``on_line``; returns asv's exit
    status.

    asv exits 1 when ``-b`` selects nothing ("No benchmarks selected"); that is returned as
    0: a selection without, say, timings is not an error. ``idle_limit``: seconds asv may
    print nothing (see :func:`lossbench.config.idle_limit`); past it asv is killed and
    ``ToolError`` says so. A full disk, and Ctrl-C, stop asv too.
    """
    cmd = [sys.executable, "-m", "lossbench.asv_atomic", *args]
    env = dict(os.environ if env is None else env)
    tools = str(Path(__file__).resolve().parents[1])  # lossbench's own folder, for the launcher
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tools, env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        start = time.monotonic()
        proc = line_process(cmd, repo, env, own_group=True)
        nothing, full = False, None
        try:
            for line in lines_within(proc.stdout, idle_limit):
                log.write(line)
                log.flush()
                line = line.rstrip("\n")
                nothing = nothing or line.startswith("· No benchmarks selected")
                if full is None and os.strerror(errno.ENOSPC) in line:
                    full = line.strip()
                if on_line is not None:
                    on_line(line)
        except TimeoutError:
            stop(proc)
            log.write(f"# killed: nothing printed for {idle_limit:.0f} s\n")
            raise ToolError(
                f"asv printed nothing for {idle_limit:.0f} s (longer than any timeout it "
                f"enforces itself: a hang) and was stopped; see {log_path}"
            ) from None
        finally:
            stop(proc)  # a no-op once asv has exited; Ctrl-C, a failed echo: asv stops too
        rc = proc.wait()
        log.write(f"# exit {rc} after {time.monotonic() - start:.0f} s\n")
    if full is not None:
        raise ToolError(f"the disk is full ({full[-160:]}); free space, then run again")
    return 0 if rc == 1 and nothing else rc


@contextmanager
def checkout_lock(repo, command: str) -> Iterator[Path]:
    """Holds ``<repo>/.asv/lossbench.lock`` (``flock``) while the block runs: one command
    that runs asv or writes results per checkout at a time. ``ToolError`` naming the
    holder when another holds it (a lock is released when its holder exits, even killed;
    an asv it started holds it until it exits too). Two clones each have their own."""
    path = Path(repo) / ".asv" / "lossbench.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise ToolError(f"could not lock {path}: {exc.strerror}") from None
        raise ToolError(
            f"{path} is held by {holder} (or an asv it started): one gate, history, "
            f"backfill or bisect per checkout at a time; wait for it, or use another clone"
        ) from None
    os.ftruncate(fd, 0)
    stamp = time.strftime("%H:%M:%S")
    os.pwrite(fd, f"{command} (pid {os.getpid()}, since {stamp})\n".encode(), 0)
    _LOCK_FDS.append(fd)
    try:
        yield path
    finally:
        _LOCK_FDS.remove(fd)
        os.close(fd)


def dirty_paths(repo, paths: Sequence[str]) -> list[str]:
    """The files under ``paths`` with uncommitted changes (untracked ones included, ignored
    ones not), as ``git status`` names them."""
    out = git(repo, "status", "--porcelain", "--untracked-files=all", "--", *paths)
    return [line[3:] for line in out.splitlines() if line.strip()]


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
