"""Paired timings: BASE and HEAD timed seconds apart, decided from the pairs.

asv times one commit after the other; even interleaved round by round, a round of BASE is
about a minute away from the same round of HEAD, and the load of a shared machine does not
line up over a minute. Here each commit gets a **persistent worker process** (its own
``softmaxloss``, extracted from the commit, first on ``sys.path``; this checkout's
``benchmarks/``; its C++ build from the content-keyed cache), running the suite's own
``time_`` code (``lossbench.paired_worker``). For every selected parameter combination the
controller alternates the two workers **A B B A A B ...**: each *batch* is ``k`` calls of
one worker (``setup`` before every call, each call timed alone), sized to about
``batch_seconds`` of timed work, and each pair of adjacent batches gives one ratio
``r = median(HEAD calls) / median(BASE calls)``, two batches a fraction of a second apart.

**What makes two processes of the same code differ**, fixed in every worker's environment
(``WORKER_ENV``), measured in docs/gate.md: glibc's dynamic mmap threshold (a process whose
large temporaries land on fresh pages pays page faults in CPU time, another reuses its
heap: ``MALLOC_MMAP_THRESHOLD_`` 32 MiB, glibc's maximum, and ``MALLOC_TRIM_THRESHOLD_``
1 GiB pin the heap's behaviour, so buffers up to 32 MiB are reused, never faulted in again;
larger ones are fresh mappings in every process alike), string hashing
(``PYTHONHASHSEED=0``) and address-space randomisation (``setarch -R`` where it works). What
that hides from users: the page faults a process of theirs may or may not pay for
temporaries between 128 KiB and 32 MiB (glibc's default threshold adapts); the memory
benchmarks (``bench_memory``) run in asv's own processes without any of it.

**Decision** (two stages; every decision from data no earlier look has seen):

1. *screen*: every combination, one worker pair, ``pairs[0]`` pairs (``early`` when those
   are plainly clean); a combination whose median ratio exceeds ``screen`` is a *suspect*;
2. *confirm*: the suspects only, in ``confirm_workers`` **fresh** worker pairs, one after
   the other (a process's own state cannot follow it), ``pairs[1]`` pairs in each. A
   suspect regresses when the median ratio of **every** worker pair exceeds ``threshold``
   **and** a one-sided sign test over all its confirm ratios (H0: a pair ratio is as likely
   below 1 as above) rejects at ``alpha / m``, ``m`` the number of suspects (Bonferroni):
   false alarms are controlled over every combination compared and over both looks.

Why several worker pairs: the ratios of one worker pair are not independent. Two processes
of the same code can differ persistently (at 3200x3200, whose 41 MB buffers are fresh
mappings in every call, by up to 1.9x in a screen), and a single fresh pair can do so too:
in the detection study's no-op 9 a confirm pair read 1.112 with all 12 ratios above 1
(p = 0.0002), a false alarm of the one-pair rule. The unit that replicates is the worker
pair, so a regression must show in each of them.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import json
import math
import os
import re
import select
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lossbench import runner
from lossbench.errors import ToolError

WORKER_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "PYTHONHASHSEED": "0",
}
# The series the paired timings are stored under, in asv's results: bench_time's
# TimeSoftmaxLoss.time_forward is stored as bench_paired.PairedTimeSoftmaxLoss.time_forward
# (the benchmark exists, skipped by asv run, so that asv publishes what is stored).
STORE = {
    "bench_time.TimeSoftmaxLoss": "bench_paired.PairedTimeSoftmaxLoss",
    "bench_threads.TimeThreads": "bench_paired.PairedTimeThreads",
}

_BOOT = """
import sys
sys.path.insert(1, {tools!r})
from lossbench.paired_worker import main
main({bench_dir!r})
"""


@dataclass(frozen=True)
class Settings:
    """The method's knobs; the defaults are the gate's (chosen from docs/gate.md)."""

    pairs: tuple[int, int] = (6, 6)  # screen; confirm, in each of its worker pairs
    confirm_workers: int = 3  # fresh worker pairs of the confirm stage
    early: int = 3  # the screen stops after this many pairs when the case is plainly clean
    batch_seconds: float = 0.015  # timed work per batch
    max_calls: int = 300  # calls per batch, at most
    screen: float = 1.05
    threshold: float = 1.10
    alpha: float = 0.01
    env_fix: bool = True  # WORKER_ENV and setarch -R in the workers (off: for comparison)
    # Bounded waits: a worker's answer is waited for ``timeout_factor`` times what it should
    # cost (the probe's per-call time, times the calls asked for), at least ``timeout_floor``
    # seconds; its first call of a case, the benchmark's own asv timeout (benchmarks.json,
    # asv's default_benchmark_timeout where it sets none); its start, ``start_timeout``
    # (torch's import, the C++ build of a new commit). Past that the worker is killed and
    # the case named: every hang ends within 10 minutes.
    timeout_factor: float = 20.0
    timeout_floor: float = 60.0
    start_timeout: float = 300.0

    @property
    def rule(self) -> str:
        """The decision rule in a few words (the study keeps it with every comparison)."""
        return (
            f"screen {self.pairs[0]} pairs > {self.screen:g}; confirm {self.confirm_workers} "
            f"worker pairs x {self.pairs[1]}, each median > t, sign test"
        )


@dataclass(frozen=True)
class Case:
    """One parameter combination of a ``time_`` benchmark."""

    bench: str
    params: tuple[str, ...]  # asv's reprs, as in benchmarks.json
    timeout: float = field(default=60.0, compare=False)  # asv's, for one run of it

    @property
    def label(self) -> str:
        return f"{self.bench}({', '.join(self.params)})"

    @property
    def values(self) -> list:
        return [ast.literal_eval(p) for p in self.params]


@dataclass
class Outcome:
    """What the paired timings found for one case."""

    case: Case
    skipped: str | None = None
    error: str | None = None  # the benchmark raised (a failure of that side's code)
    fault: str | None = None  # not measured: a worker died, hung or could not start
    base_times: list[float] = field(default_factory=list)  # batch medians, BASE
    head_times: list[float] = field(default_factory=list)
    screen_ratios: list[float] = field(default_factory=list)
    confirm_groups: list[list[float]] = field(default_factory=list)  # one per worker pair
    p_value: float | None = None
    regressed: bool = False

    @property
    def confirm_ratios(self) -> list[float]:
        return [r for group in self.confirm_groups for r in group]

    @property
    def ratio(self) -> float | None:
        """The estimate the decision used: the confirm stage's median, else the screen's."""
        ratios = self.confirm_ratios or self.screen_ratios
        return statistics.median(ratios) if ratios else None


def sign_test(ratios: list[float]) -> float:
    """One-sided sign test: P(at least this many ratios above 1 | each above 1 with
    probability 1/2). Ties (exactly 1) are dropped."""
    above = sum(r > 1 for r in ratios)
    n = above + sum(r < 1 for r in ratios)
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(above, n + 1)) / 2**n


def cases(benchmarks: dict, pattern: str) -> list[Case]:
    """The combinations of the ``time_`` benchmarks in ``benchmarks.json`` (asv's list)
    that asv's ``-b pattern`` rule selects; the paired series themselves excluded."""
    out = []
    stored = tuple(STORE.values())
    for name, info in sorted(benchmarks.items()):
        if info.get("type") != "time" or name.startswith(stored):
            continue
        timeout = float(info.get("timeout") or Case.timeout)
        for combo in itertools.product(*info.get("params", [])):
            case = Case(name, tuple(combo), timeout)
            if re.search(pattern, case.label):
                out.append(case)
    return out


def extract_tree(repo, commit: str, dest: Path) -> Path:
    """``dest/<commit>/softmaxloss``: the commit's package, extracted once (git archive)."""
    tree = Path(dest) / commit
    if (tree / "softmaxloss" / "__init__.py").is_file():
        return tree
    tmp = Path(dest) / f".{commit}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    archive = tmp / "src.tar"
    runner.git(repo, "archive", "--format=tar", "-o", str(archive), commit, "softmaxloss")
    with tarfile.open(archive) as tar:
        try:
            tar.extractall(tmp, filter="data")
        except TypeError:  # a Python without extraction filters (before 3.10.12)
            tar.extractall(tmp)  # noqa: S202 (our own git archive)
    archive.unlink()
    try:
        os.rename(tmp, tree)
    except OSError:  # extracted meanwhile by another gate
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def _setarch() -> list[str]:
    """``setarch <arch> -R`` (no address-space randomisation) where it works, else nothing."""
    cmd = ["setarch", os.uname().machine, "-R"]
    if shutil.which("setarch") is None:
        return []
    try:
        ok = subprocess.run([*cmd, "true"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return cmd if ok else []


class WorkerFault(ToolError):
    """A worker that died, gave no answer in time, answered what is not an answer, or could
    not start: the case it was timing is not measured (the gate fails closed, exit 3)."""


class Worker:
    """One persistent worker process for one commit's package. Every answer is waited for
    at most ``timeout`` seconds (:class:`WorkerFault` past it, the worker killed)."""

    def __init__(
        self, python: str, tree: Path, repo: Path, log: Path, name: str, fix=True,
        start_timeout: float = Settings.start_timeout,
    ):  # fmt: skip
        self.name = name
        fixed = WORKER_ENV if fix else {}
        env = {**os.environ, **fixed, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
        boot = _BOOT.format(tools=str(repo / "tools"), bench_dir=str(repo / "benchmarks"))
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "a")  # noqa: SIM115 (closed in close())
        self._log.write(f"# worker {name}: {tree}\n")
        self._log.flush()
        self._buffer = b""
        self.proc = subprocess.Popen(
            [*(_setarch() if fix else []), python, "-c", boot],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            bufsize=0,
        )
        try:
            self.hello = self.request({"op": "hello"}, start_timeout, "while starting")
            if "error" in self.hello:
                raise WorkerFault(
                    f"worker {name}: its softmaxloss ({tree}) does not import "
                    f"({self.hello['error']}); see {log}"
                )
            where = self.hello.get("softmaxloss")
            if not isinstance(where, str) or Path(where).resolve().parent.parent != tree.resolve():
                raise WorkerFault(f"worker {name} imported {where}, not {tree}")
        except BaseException:
            self.close()
            raise

    def _died(self, what: str) -> WorkerFault:
        try:
            rc = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        how = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        return WorkerFault(f"worker {self.name} died ({how}) {what}; see {self._log.name}")

    def _readline(self, timeout: float, what: str) -> bytes | None:
        """One line of the worker's stdout; None when it closed; WorkerFault (the worker
        killed) when none comes within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                self.proc.wait()
                raise WorkerFault(
                    f"worker {self.name} gave no answer within {timeout:.0f} s {what} "
                    f"(a hang): killed; see {self._log.name}"
                )
            if select.select([fd], [], [], left)[0]:
                chunk = os.read(fd, 1 << 16)
                if not chunk:
                    return None
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def request(self, obj: dict, timeout: float, what: str = "") -> dict:
        """Sends one request, returns its answer (a dict)."""
        try:
            self.proc.stdin.write((json.dumps(obj) + "\n").encode())
            self.proc.stdin.flush()
        except OSError:  # BrokenPipeError: the worker is gone
            raise self._died(what) from None
        line = self._readline(timeout, what)
        if line is None:
            raise self._died(what)
        try:
            answer = json.loads(line)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            text = line.decode(errors="replace")[:80]
            self.proc.kill()
            raise WorkerFault(
                f"worker {self.name} answered {text!r} {what}, not a JSON object (something "
                f"in it wrote to its stdout): killed; see {self._log.name}"
            )
        return answer

    def time(self, case: Case, calls: int, timeout: float) -> dict:
        return self.request(
            {"op": "time", "bench": case.bench, "params": case.values, "calls": calls},
            timeout,
            "while timing",
        )

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self._log.close()


class _Pair:
    """BASE's and HEAD's workers, started together."""

    def __init__(self, python, trees, repo, log, stage, fix=True, start_timeout=300.0):
        self.base = Worker(python, trees[0], repo, log, f"BASE ({stage})", fix, start_timeout)
        try:
            self.head = Worker(python, trees[1], repo, log, f"HEAD ({stage})", fix, start_timeout)
        except BaseException:
            self.base.close()
            raise

    def close(self):
        self.base.close()
        self.head.close()


def _median_call(answer: dict, who: str, case: Case) -> float:
    if "error" in answer:
        raise _CaseError(f"{who}: {answer['error']}")
    return statistics.median(answer["times"])


class _CaseError(Exception):
    pass


def _pairs(
    pair: _Pair, case: Case, n: int, settings: Settings, out: Outcome, early: int | None = None
) -> list[float]:
    """``n`` ABBA pairs of one case; returns the ratios HEAD / BASE, appends batch medians.
    ``early``: stop after that many pairs when their median is at most half-way from 1 to
    the screen's limit (a clean case; only the screen stops early: it selects, the confirm
    stage decides)."""
    calls = None
    # Warm-up (the class's prepare), the skip rule and the batch size from BASE's calls. Both
    # workers make the same calls, so that the i-th pair finds each in the same state: a
    # worker's allocator cycles with its calls (at 3200x3200 bfloat16, same code, a HEAD
    # three calls behind read 1.27-1.31 in every fresh worker pair, pair by pair alike).
    floor, factor = settings.timeout_floor, settings.timeout_factor
    for worker in (pair.base, pair.head):
        answer = worker.time(case, 1, max(floor, case.timeout))
        if "skip" in answer:
            raise _Skip(answer["skip"])
        first = _median_call(answer, worker.name, case)
        probe = _median_call(
            worker.time(case, 3, max(floor, factor * 3 * first)), worker.name, case
        )
        if calls is None:
            per_call = max(min(first, probe), 1e-7)
            calls = max(1, min(settings.max_calls, math.ceil(settings.batch_seconds / per_call)))
            wait = max(floor, factor * calls * max(first, probe))
    ratios = []
    for i in range(n):
        order = (pair.base, pair.head) if i % 2 == 0 else (pair.head, pair.base)
        got = {w.name: _median_call(w.time(case, calls, wait), w.name, case) for w in order}
        b, h = got[pair.base.name], got[pair.head.name]
        out.base_times.append(b)
        out.head_times.append(h)
        ratios.append(h / b)
        if (
            early
            and len(ratios) == early
            and statistics.median(ratios) <= (1 + settings.screen) / 2
        ):
            break
    return ratios


class _Skip(Exception):
    pass


def measure(
    repo,
    base: str,
    head: str,
    selected: list[Case],
    *,
    python: str,
    workdir: Path,
    settings: Settings = Settings(),
    echo: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Both stages over ``selected``; one :class:`Outcome` per case."""
    repo = Path(repo)
    trees = [extract_tree(repo, c, workdir / "trees") for c in (base, head)]
    log = workdir / "workers.log"
    outcomes = {case: Outcome(case) for case in selected}
    say = echo or (lambda line: None)

    def stage(name: str, todo: list[Case], n: int, keep, early: int | None) -> None:
        """One worker pair over ``todo``; a fault ends that pair, names its case, and the
        next case gets a fresh pair. A pair that cannot start names every case left."""
        start = time.monotonic()
        pair = None
        try:
            for k, case in enumerate(todo, 1):
                out = outcomes[case]
                if out.error or out.skipped or out.fault:
                    continue
                if pair is None:
                    try:
                        pair = _Pair(
                            python, trees, repo, log, name, settings.env_fix,
                            start_timeout=settings.start_timeout,
                        )  # fmt: skip
                    except WorkerFault as exc:
                        for left in todo[k - 1 :]:
                            if not (outcomes[left].skipped or outcomes[left].error):
                                outcomes[left].fault = str(exc)
                        say(f"paired {name}: {exc}")
                        return
                try:
                    keep(out, _pairs(pair, case, n, settings, out, early))
                except _Skip as exc:
                    out.skipped = str(exc)
                except _CaseError as exc:
                    out.error = str(exc)
                except WorkerFault as exc:
                    out.fault = str(exc)
                    say(f"paired {name}: {exc}")
                    pair.close()
                    pair = None
                if k % 10 == 0 or k == len(todo):
                    say(f"paired {name}: {k}/{len(todo)} cases, {time.monotonic() - start:.0f} s")
        finally:
            if pair is not None:
                pair.close()

    say(f"paired: {len(selected)} cases, {settings.pairs[0]} pairs each (screen)")

    def screened(out, ratios):
        out.screen_ratios = ratios

    def confirmed(out, ratios):
        out.confirm_groups.append(ratios)

    stage("screen", selected, settings.pairs[0], screened, settings.early)
    suspects = [
        c
        for c, o in outcomes.items()
        if not o.fault and o.screen_ratios and statistics.median(o.screen_ratios) > settings.screen
    ]
    if suspects:
        k = settings.confirm_workers
        say(
            f"paired: {len(suspects)} suspects, {settings.pairs[1]} pairs each in {k} new "
            "worker pairs"
        )
        for i in range(1, k + 1):
            stage(f"confirm {i}/{k}", suspects, settings.pairs[1], confirmed, None)
    for case in suspects:
        out = outcomes[case]
        if out.error or out.skipped or out.fault or not out.confirm_groups:
            continue
        out.p_value = sign_test(out.confirm_ratios)
        out.regressed = decide(out.confirm_groups, out.p_value, len(suspects), settings)
    return [outcomes[c] for c in selected]


def trials(
    repo,
    base: str,
    head: str,
    selected: list[Case],
    n: int,
    pairs: int,
    *,
    python: str,
    workdir: Path,
    env_fix: bool = True,
    echo: Callable[[str], None] | None = None,
) -> list[list[Outcome]]:
    """``n`` fresh worker pairs, each timing ``pairs`` pairs of every case in full (no early
    stop, no confirm stage): the spread of the paired ratios, or a change's native factor.
    ``trial_medians`` reads one case's median per trial."""
    settings = Settings(pairs=(pairs, 0), early=0, screen=math.inf, env_fix=env_fix)
    out = []
    for k in range(n):
        if echo:
            echo(f"paired: trial {k + 1} of {n}, {len(selected)} cases")
        out.append(
            measure(repo, base, head, selected, python=python, workdir=workdir, settings=settings)
        )
    return out


def trial_medians(trials_: list[list[Outcome]], i: int) -> list[float]:
    """The median ratio of case ``i`` in each trial that timed it."""
    return [statistics.median(t[i].screen_ratios) for t in trials_ if t[i].screen_ratios]


def decide(groups: list[list[float]], p_value: float, m: int, settings: Settings) -> bool:
    """A suspect regresses when every worker pair's median ratio exceeds the threshold and
    the sign test over all its confirm ratios rejects at ``alpha / m``."""
    return (
        len(groups) >= 1
        and all(g and statistics.median(g) > settings.threshold for g in groups)
        and p_value < settings.alpha / m
    )


# ---- asv's store ------------------------------------------------------------------------------


def store(conf_path: str, machine: str, commit: str, outcomes: list[Outcome], side: str) -> int:
    """Writes one commit's paired timings into asv's results (``STORE`` names), through
    asv's own API, as ``asv run`` would: the value of a combination is the median of its
    batch medians, the samples are the batch medians. Returns the combinations written."""
    from lossbench.config import results_dir
    from lossbench.results import add, open_for_writing, save

    res, benchmarks = open_for_writing(conf_path, machine, commit)
    by_name: dict[str, dict] = {}
    for out in outcomes:
        times = out.base_times if side == "base" else out.head_times
        cls, method = out.case.bench.rsplit(".", 1)
        if cls not in STORE or not times or out.fault or out.error:
            continue  # a case cut short stores nothing
        by_name.setdefault(f"{STORE[cls]}.{method}", {})[out.case.params] = times
    written = 0
    for name, measured in by_name.items():
        info = benchmarks.get(name)
        if info is None:
            raise ToolError(f"{name} is not in asv's benchmarks.json: the paired series need it")
        combos = list(itertools.product(*info["params"]))
        values = [statistics.median(measured[c]) if c in measured else math.nan for c in combos]
        samples = [measured.get(c) for c in combos]
        add(res, info, values, samples, [1 if c in measured else None for c in combos])
        written += len(measured)
    save(res, results_dir(conf_path))
    return written


def environment_python(conf_path: str) -> str:
    """The interpreter of the config's (one) asv environment, where it exists; else this one."""
    from asv import environment

    from lossbench.config import asv_config

    conf = asv_config(conf_path)
    for env in environment.get_environments(conf, None, verbose=False):
        try:
            return env.find_executable("python")
        except OSError:  # not built yet
            continue
    return sys.executable
