"""The detection study's injected regressions: what each changes, and how it is applied.

Python injections are real modules of this package (``slowdown``, ``precision``,
``memory``), linted and tested like the rest: the study copies one into the scratch
commit's package as ``softmaxloss/_study_injection.py`` and calls its ``install`` from the
package's ``__init__``. C++ injections are edits of the C++ Functions' source, written as
functions of this package (``cpp``) that refuse a source they do not recognise.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lossbench.injections import cpp

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Injection:
    """One change committed on top of the base: a no-op, a Python or a C++ injection."""

    name: str
    label: str
    kind: str  # noop, python, cpp
    target: str = ""  # the Python module, or the cpp function
    params: dict = field(default_factory=dict)
    impl: str = "manual"
    # where it should show: the benchmark methods and sizes (for the study's table)
    methods: tuple[str, ...] = ()
    sizes: tuple[str, ...] = ()
    # the time_ benchmark class its native factor is measured with
    timed: str = "bench_time.TimeSoftmaxLoss"
    # the one dtype it changes, where it changes one ("": every dtype, the native factor
    # measured in float32): its target rows are that dtype's only
    dtype: str = ""
    # gated in every run of the study (a change that timings must catch), or in the first
    # only (what the deterministic families decide: the same verdict every run)
    every_run: bool = True

    def apply(self, clone: Path) -> None:
        """Edits the scratch clone's working tree."""
        package = Path(clone) / "softmaxloss"
        if self.kind == "noop":
            with open(Path(clone) / "README.md", "a") as f:
                f.write(f"\n<!-- {self.name}: no change to the package -->\n")
        elif self.kind == "python":
            shutil.copyfile(HERE / f"{self.target}.py", package / "_study_injection.py")
            args = ", ".join(f"{k}={v!r}" for k, v in sorted(self.params.items()))
            with open(package / "__init__.py", "a") as f:
                f.write(
                    f"\n\n# ---- detection-power study: {self.label} ----\n"
                    "from softmaxloss import _study_injection  # noqa: E402\n\n"
                    f"_study_injection.install(IMPLEMENTATIONS, {self.impl!r}, {args})\n"
                )
        elif self.kind == "cpp":
            (source,) = sorted((package / "csrc").glob("*.cpp"))
            edit = getattr(cpp, self.target)
            source.write_text(edit(source.read_text(), **self.params))
        else:
            raise ValueError(f"unknown injection kind {self.kind!r}")


def noops(n: int) -> list[Injection]:
    """No-op commits: each gated once, on the gate's whole selection."""
    return [Injection(f"noop-{i}", "no-op", "noop", every_run=False) for i in range(1, n + 1)]


# The catalogue. Python slowdowns are calibrated by the callgrind cost of a softmax row
# relative to a row of manual's own forward (1.11) and backward (1.16) at 1024x1000; every
# injection's real factors are measured by the study (native time, paired; instructions).
_FWD, _BWD = 1.11, 1.16


def python_slowdown(factor: float, region: str, every_run: bool = True) -> Injection:
    cost = _FWD if region == "forward" else _BWD
    return Injection(
        f"py-{region}-x{factor:g}",
        f"Python: extra softmax rows in {region}, nominal {factor:g}x",
        "python",
        "slowdown",
        {"fraction": round((factor - 1) / cost, 6), "region": region},
        methods=(f"time_{region}", f"track_{region}"),
        sizes=("128x100", "1024x1000", "3200x3200"),
        every_run=every_run,
    )


CATALOGUE = {
    injection.name: injection
    for injection in [
        python_slowdown(1.05, "forward", every_run=False),
        python_slowdown(1.2, "backward"),
        Injection(
            "cpp-extra-pass",
            "C++: an extra exp-and-sum pass over every row of manual's forward",
            "cpp",
            "extra_pass",
            {"every": 1},
            methods=("time_forward", "track_forward"),
            sizes=("128x100", "1024x1000", "3200x3200"),
            every_run=False,
        ),
        Injection(
            "cpp-bf16-extra-pass",
            "C++: an extra exp-and-sum pass over every row of manual's forward, in the "
            "bfloat16/float16 path only",
            "cpp",
            "widened_extra_pass",
            {"every": 1},
            methods=("time_forward",),
            sizes=("128x100", "1024x1000", "3200x3200"),
            dtype="bfloat16",
        ),
        Injection(
            "cpp-native-x1.1",
            "C++: an extra pass over every 6th row, in the build users run only",
            "cpp",
            "native_only_extra_pass",
            {"every": 6},
            methods=("time_forward",),
            sizes=("128x100", "1024x1000", "3200x3200"),
        ),
        Injection(
            "cpp-native-x1.2",
            "C++: an extra pass over every 3rd row, in the build users run only",
            "cpp",
            "native_only_extra_pass",
            {"every": 3},
            methods=("time_forward",),
            sizes=("128x100", "1024x1000", "3200x3200"),
        ),
        Injection(
            "cpp-one-accumulator",
            "C++: the row reductions lose their unrolling (one accumulator)",
            "cpp",
            "one_accumulator",
            methods=("time_forward", "time_backward"),
            sizes=("1024x1000", "3200x3200"),
        ),
        Injection(
            "cpp-memory-sweep",
            "C++: an extra sweep over all the logits before manual's forward rows",
            "cpp",
            "memory_sweep",
            methods=("time_forward", "track_forward"),
            sizes=("1024x1000", "3200x3200"),
        ),
        Injection(
            "cpp-serial",
            "C++: the row loops lose their parallelism (one thread)",
            "cpp",
            "serial_rows",
            methods=("time_forward", "time_backward"),
            sizes=("1024x1000", "3200x3200"),
            timed="bench_threads.TimeThreads",
        ),
        Injection(
            "py-precision-x4",
            "Python: gradient error +4 eps",
            "python",
            "precision",
            {"k": 4.0},
            methods=("track_grad_error",),
            sizes=("normal", "large", "many_classes"),
            every_run=False,
        ),
        Injection(
            "py-memory-buffer",
            "Python: one more logits buffer through forward and backward",
            "python",
            "memory",
            methods=("track_extra_bytes", "peakmem_forward_backward"),
            sizes=("3200x3200", "512x32000"),
            every_run=False,
        ),
    ]
}
