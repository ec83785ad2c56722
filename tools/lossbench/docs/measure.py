"""Every measured record of the docs, re-measured in one go (``make measurements``).

``MEASUREMENTS`` lists the command behind each record of ``docs/measurements/`` that this
machine can re-measure, headline first; ``run`` runs them in order, each writing its own
record (``--record``), on this machine, in this checkout. Records imported from an earlier
page (``lossbench.docs.imported``: the gate's study, CI's runs) are not among them: they say
so, and how they were made.

The commands are recorded as a reader would type them (``python -m lossbench ...``): they run
with this interpreter's folder first on ``PATH`` and this checkout's ``tools/`` on
``PYTHONPATH``, so that ``python`` is this interpreter.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lossbench import runner
from lossbench.errors import ToolError, UsageError
from lossbench.options import echo

RECORDS = Path("docs/measurements")
SCRATCH = Path(".asv/measurements")  # ignored by git: outputs the records do not keep
LB = ("python", "-m", "lossbench")


@dataclass(frozen=True)
class Measurement:
    name: str  # the record: docs/measurements/<name>.json
    argv: tuple[str, ...]  # the command line, without --record
    prepare: Callable[[Path], None] | None = None  # before the command, in the checkout
    finish: Callable[[Path], None] | None = None  # after it succeeded
    env: tuple[tuple[str, str], ...] = ()  # variables set for the command (the record keeps them)
    note: str = field(default="", compare=False)

    @property
    def record(self) -> Path:
        return RECORDS / f"{self.name}.json"

    @property
    def command(self) -> list[str]:
        """The command as run and recorded: ``--record`` goes before ``timed``'s ``--``."""
        argv = list(self.argv)
        at = argv.index("--") if "--" in argv else len(argv)
        return [*argv[:at], "--record", str(self.record), *argv[at:]]


def _fresh(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


DEPTH_OUT = SCRATCH / "depth"  # the depth runs' CSV and plot (depth never overwrites them)
DEPTH_X64_OUT = SCRATCH / "depth-x64"


def _copy_depth_plot(root: Path) -> None:
    """The plot of the depth page is the recorded run's."""
    shutil.copyfile(root / DEPTH_OUT / "depth.png", root / "docs" / "depth.png")


GATE_CLONE = SCRATCH / "gate-docs-only"


def _docs_only_commit(root: Path) -> None:
    """A clone of HEAD with one more commit that changes README.md only."""
    clone = root / GATE_CLONE
    _fresh(clone)
    runner.git(root, "clone", "--quiet", "--no-hardlinks", str(root), str(clone))
    with open(clone / "README.md", "a") as fh:
        fh.write("\nA documentation-only change.\n")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "lossbench",
        "GIT_AUTHOR_EMAIL": "lossbench@localhost",
        "GIT_COMMITTER_NAME": "lossbench",
        "GIT_COMMITTER_EMAIL": "lossbench@localhost",
    }
    runner.git(clone, "commit", "--quiet", "-am", "README: a documentation-only change", env=env)


EXT_CACHE = SCRATCH / "ext-cache"
# The low-precision speed targets' sizes: the gate's three and a large vocabulary.
LOW_PRECISION_SIZES = "128x100,1024x1000,3200x3200,512x32000"

MEASUREMENTS = [
    Measurement("ratios", (*LB, "ratios", "--quick", "--repeats", "9", "--threads", "2")),
    Measurement("compare", (*LB, "compare")),
    Measurement("compare-x100", (*LB, "compare", "--scale", "100")),
    Measurement("compare-float64", (*LB, "compare", "--dtype", "float64")),
    Measurement("compare-bfloat16", (*LB, "compare", "--dtype", "bfloat16")),
    Measurement("compare-bfloat16-x100", (*LB, "compare", "--dtype", "bfloat16", "--scale", "100")),
    Measurement("compare-float16", (*LB, "compare", "--dtype", "float16")),
    Measurement(
        "ratios-bfloat16",
        (*LB, "ratios", "--size", "512", "--classes", "32000", "--dtype", "bfloat16")
        + ("--repeats", "9", "--threads", "2"),
    ),
    Measurement("overhead", (*LB, "overhead", "--rounds", "3")),
    *(
        Measurement(
            f"overhead-bfloat16-{threads}",
            (*LB, "overhead", "--rounds", "3", "--dtype", "bfloat16", "--threads", threads)
            + ("--sizes", LOW_PRECISION_SIZES, "--impls", "manual,fused,fused_inplace"),
        )
        for threads in ("1", "2")
    ),
    Measurement(
        "overhead-python",
        (*LB, "overhead", "--rounds", "3", "--impls", "manual,fused"),
        env=(("SOFTMAXLOSS_CPU_EXT", "0"),),
    ),
    Measurement(
        "depth",
        (*LB, "depth", "--dataset", "digits", "--depths", "1,2,4,8", "--out", str(DEPTH_OUT)),
        prepare=lambda root: _fresh(root / DEPTH_OUT),
        finish=_copy_depth_plot,
    ),
    Measurement(
        "depth-x64",
        (*LB, "depth", "--dataset", "digits", "--depths", "1,2,4,8", "--logit-scale", "64")
        + ("--out", str(DEPTH_X64_OUT)),
        prepare=lambda root: _fresh(root / DEPTH_X64_OUT),
    ),
    Measurement(
        "build-ext",
        (*LB, "timed", "--env", f"SOFTMAXLOSS_EXT_DIR={EXT_CACHE}", "--label")
        + ("python -m softmaxloss build-ext (empty cache)", "--")
        + ("python", "-m", "softmaxloss", "build-ext"),
        prepare=lambda root: _fresh(root / EXT_CACHE),
    ),
    Measurement(
        "gate-docs-only",
        (*LB, "timed", "--cwd", str(GATE_CLONE), "--label", "make gate BASE=HEAD~1", "--")
        + ("make", "gate", "BASE=HEAD~1", "PYTHON=python"),
        prepare=_docs_only_commit,
    ),
    Measurement(
        "fast-tests",
        (*LB, "timed", "--label", "make test", "--", "make", "test", "PYTHON=python"),
    ),
]
BY_NAME = {m.name: m for m in MEASUREMENTS}


def command_line(m: Measurement) -> str:
    """The command as a shell runs it: its variables first."""
    return shlex.join([f"{k}={v}" for k, v in m.env] + m.command)


def environment() -> dict[str, str]:
    """This interpreter as ``python``, this checkout's tools importable."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    tools = str(Path("tools").resolve())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (tools, env.get("PYTHONPATH")) if p)
    return env


def chosen(only: str | None) -> list[Measurement]:
    if not only:
        return list(MEASUREMENTS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise UsageError(
            f"--only: unknown {', '.join(map(repr, unknown)) or 'empty list'}; "
            f"the measurements: {', '.join(BY_NAME)}"
        )
    return [BY_NAME[n] for n in names]


def run(measurements: list[Measurement], root: Path, after_each=None) -> list[str]:
    """Runs each measurement in ``root`` (the checkout), ``after_each()`` after each that
    succeeded (the pages are rendered again, so that a later measurement, the tests among
    them, sees pages that agree with the records); returns the names that failed."""
    failed = []
    env = environment()
    for i, m in enumerate(measurements, 1):
        echo(f"measurements: {i} of {len(measurements)}: {command_line(m)}")
        started = time.monotonic()
        try:
            if m.prepare:
                m.prepare(root)
            proc = subprocess.run(
                m.command, cwd=root, env={**env, **dict(m.env)}, stdin=subprocess.DEVNULL
            )
            if proc.returncode == 0 and m.finish:
                m.finish(root)
        except (OSError, ToolError) as exc:
            echo(f"measurements: {m.name}: {exc}")
            failed.append(m.name)
            continue
        if proc.returncode != 0:
            echo(f"measurements: {m.name}: exit {proc.returncode}; its record is unchanged")
            failed.append(m.name)
        else:
            echo(f"measurements: {m.name}: {time.monotonic() - started:.0f} s -> {m.record}")
            if after_each:
                after_each()
    return failed
