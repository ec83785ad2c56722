"""The C++ lean path for the CPU (``csrc/lean_cpu.cpp``), built on first use.

Small calls are dominated by per-call overhead: a Python ``autograd.Function`` costs tens of
microseconds in Python and tiny tensor ops, more than the arithmetic of a 128x100 input. The
C++ Functions do the same math as the Python ``LeanManual``/``LeanFused`` in row loops, with
autograd's C++ machinery.

The source is compiled by torch's own JIT extension builder (``torch.utils.cpp_extension``,
ninja and a C++ compiler) the first time a lean CPU call needs it, about 40 s on two cores,
and loaded from the build directory afterwards (torch rebuilds it when the source changes).
``python -m softmaxloss build-ext`` builds it ahead (``make install`` and asv's install step
do):

* ``SOFTMAXLOSS_EXT_DIR``: the build directory's parent (default: torch's extension
  directory, ``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``). One build per torch
  version, Python version and instruction set.
* ``SOFTMAXLOSS_CPU_EXT=0``: never build or use it (the Python Functions serve every call).

Where it cannot be built (no compiler or ninja, a failed build) the Python Functions serve
the call, with the same results, and ``status()`` says why; a failed build warns once.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import sys
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "lean_cpu.cpp"
ENV_SWITCH = "SOFTMAXLOSS_CPU_EXT"
ENV_DIR = "SOFTMAXLOSS_EXT_DIR"

# Compiled for the vector instruction set ATen itself dispatches to here, with ATen's flags
# for it: its Vectorized code (exp is Sleef's, exported by libtorch) in 512- or 256-bit
# lanes. Under valgrind, which emulates no AVX-512, ATen dispatches to AVX2, and so does
# this (a separate build).
ISA_FLAGS = {
    "AVX512": [
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mfma",
        "-DCPU_CAPABILITY=AVX512",
        "-DCPU_CAPABILITY_AVX512",
    ],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
    "DEFAULT": ["-DCPU_CAPABILITY=DEFAULT"],
}

_failure: list[str] = []  # the reason of a failed build, once one failed


def instruction_set() -> str:
    """``"AVX512"``, ``"AVX2"`` or ``"DEFAULT"``: the one ATen's kernels use in this process
    (x86-64; ``DEFAULT`` elsewhere)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "DEFAULT"
    capability = torch.backends.cpu.get_cpu_capability()
    return capability if capability in ("AVX512", "AVX2") else "DEFAULT"


def name(isa: str | None = None) -> str:
    """The extension's name: one build per torch version, Python version and instruction set
    (``isa``, default: this process's)."""
    tag = re.sub(r"\W", "_", torch.__version__)
    py = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return f"softmaxloss_lean_cpu_{tag}_{py}_{(isa or instruction_set()).lower()}"


def unavailable_reason() -> str | None:
    """Why the extension will not be used, or None. Cheap: builds nothing."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"{ENV_SWITCH}=0"
    if _failure:
        return _failure[0]
    from torch.utils import cpp_extension

    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja), so torch cannot build extensions"
    cxx = os.environ.get("CXX", "c++")
    if not shutil.which(cxx):
        return f"no C++ compiler ({cxx!r} is not on PATH)"
    return None


def _build_directory(isa: str) -> str | None:
    parent = os.environ.get(ENV_DIR)
    if not parent:
        return None  # torch's default, under TORCH_EXTENSIONS_DIR
    path = os.path.join(parent, name(isa))
    os.makedirs(path, exist_ok=True)
    return path


@functools.cache
def build(isa: str | None = None):
    """Builds (or loads the up-to-date build of) the extension for ``isa`` (default: this
    process's); returns the module. Raises what torch's builder raises."""
    from torch.utils import cpp_extension

    isa = isa or instruction_set()
    if isa not in ISA_FLAGS:
        raise ValueError(f"isa must be one of {sorted(ISA_FLAGS)}, got {isa!r}")
    return cpp_extension.load(
        name=name(isa),
        sources=[str(SOURCE)],
        # -fopenmp: at::parallel_for is inline OpenMP (ATen's parallel backend here); without
        # it the row loops run on one thread. The runtime is the libgomp torch has loaded.
        extra_cflags=["-O3", "-fopenmp", *ISA_FLAGS[isa]],
        extra_ldflags=["-fopenmp"],
        build_directory=_build_directory(isa),
        verbose=False,
    )


_loaded: list = []  # [module or None] once decided: the per-call cost is one list read


def module():
    """The compiled module (built on the first call), or None where it cannot be used."""
    if _loaded:
        return _loaded[0]
    mod = None
    if unavailable_reason() is None:
        try:
            mod = build()
        except Exception as exc:  # a build failure: the Python path serves, and says why
            reason = f"the C++ lean path did not build: {type(exc).__name__}: {exc}"
            _failure.append(reason.splitlines()[0][:500])
            warnings.warn(
                f"{_failure[0]}; using the Python Functions", RuntimeWarning, stacklevel=3
            )
    _loaded.append(mod)
    return mod


def status() -> str:
    """One line: whether small CPU calls run the C++ lean path, and why not."""
    reason = unavailable_reason()
    if reason is not None:
        return f"Python Functions ({reason})"
    return f"C++ lean path {name()} ({instruction_set()})"
