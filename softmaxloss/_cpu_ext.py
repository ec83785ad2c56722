"""The C++ Functions for small CPU calls (``csrc/cross_entropy_cpu.cpp``), built once per content.

Small calls are dominated by per-call overhead: a Python ``autograd.Function`` costs tens of
microseconds in Python and tiny tensor ops, more than the arithmetic of a 128x100 input. The
C++ Functions do the same math as the Python Functions in row loops, with autograd's C++
machinery.

**The build cache.** A build is keyed by everything that decides the binary (:func:`build_key`:
the source's bytes, the compiler flags, the compiler's identity, torch's version and build,
Python's version and ABI, the platform and the instruction set) and lives in its own folder,
``<cache>/softmaxloss_cpu_<isa>_<digest>/``, next to a ``key.json`` that lists the key. A
key already built is loaded as it is, whatever pip did to the source's file dates; a changed
key is a new folder, so two commits' builds live side by side. The build runs in a
subprocess (torch's extension builder, ninja and a C++ compiler; ~40-60 s on two cores) in a
temporary folder, under a lock per key, and is published by one atomic rename: parallel
builders (asv's install step, the gate's workers, test environments) build a key once and
never load a half-written library.

* ``SOFTMAXLOSS_EXT_DIR``: the cache folder. Default: ``softmaxloss-ext-<uid>`` in the
  system's temporary folder (``/tmp`` here), shared by every environment, ``HOME`` and clone
  of one user, and refused unless that user owns it and no one else can write to it.
  ``python -m softmaxloss build-ext --clear`` empties it; deleting it is always safe.
* ``SOFTMAXLOSS_CPU_EXT=0``: never build or use the C++ Functions (the Python Functions
  serve every call).

Where it cannot be built (no compiler or ninja, a failed build) the Python Functions serve
the call, with the same results, and ``status()`` says why; a failed build warns once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).parent / "csrc" / "cross_entropy_cpu.cpp"
ENV_SWITCH = "SOFTMAXLOSS_CPU_EXT"
ENV_DIR = "SOFTMAXLOSS_EXT_DIR"
PREFIX = "softmaxloss_cpu_"
# Part of the key: bump it when the way a build is made changes (not its inputs).
BUILD_FORMAT = 1

# Compiled for the vector instruction set ATen itself dispatches to here, with ATen's flags
# for it: its Vectorized code (exp is Sleef's, exported by libtorch) in 512- or 256-bit
# lanes. Under valgrind, which emulates no AVX-512, ATen dispatches to AVX2, and so does
# this (a separate build). F16C: ATen's AVX2 float16 conversions (vec_half.h) need it.
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
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY=AVX2", "-DCPU_CAPABILITY_AVX2"],
    "DEFAULT": ["-DCPU_CAPABILITY=DEFAULT"],
}
# -fopenmp: at::parallel_for is inline OpenMP (ATen's parallel backend here); without it the
# row loops run on one thread. The runtime is the libgomp torch has loaded.
CFLAGS = ["-O3", "-fopenmp"]
LDFLAGS = ["-fopenmp"]

_failure: list[str] = []  # the reason of a failed build, once one failed


def instruction_set() -> str:
    """``"AVX512"``, ``"AVX2"`` or ``"DEFAULT"``: the one ATen's kernels use in this process
    (x86-64; ``DEFAULT`` elsewhere)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return "DEFAULT"
    capability = torch.backends.cpu.get_cpu_capability()
    return capability if capability in ("AVX512", "AVX2") else "DEFAULT"


def _compiler() -> str:
    return os.environ.get("CXX", "c++")


@functools.cache
def _compiler_identity(cxx: str) -> str:
    """The compiler's resolved path and the first line of its ``--version``."""
    path = shutil.which(cxx)
    if path is None:
        raise FileNotFoundError(f"no C++ compiler ({cxx!r} is not on PATH)")
    out = subprocess.run(
        [path, "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    ).stdout
    return f"{os.path.realpath(path)}: {(out.splitlines() or ['?'])[0]}"


def build_key(isa: str, source: bytes) -> dict:
    """Everything that decides the binary built from ``source`` for ``isa``."""
    return {
        "format": BUILD_FORMAT,
        "source_sha256": hashlib.sha256(source).hexdigest(),
        "isa": isa,
        "cflags": [*CFLAGS, *ISA_FLAGS[isa]],
        "ldflags": LDFLAGS,
        "compiler": _compiler_identity(_compiler()),
        "torch": torch.__version__,
        "torch_git": torch.version.git_version,
        "cxx11_abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
        "python": sys.version,
        "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX"),
        "platform": sysconfig.get_platform(),
    }


def name_of(key: dict) -> str:
    """The build's folder and module name: the instruction set and the key's digest."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
    return f"{PREFIX}{key['isa'].lower()}_{digest[:16]}"


def name(isa: str | None = None) -> str:
    """The name of this source's build for ``isa`` (default: this process's)."""
    return name_of(build_key(_check_isa(isa), SOURCE.read_bytes()))


def _check_isa(isa: str | None) -> str:
    isa = isa or instruction_set()
    if isa not in ISA_FLAGS:
        raise ValueError(f"isa must be one of {sorted(ISA_FLAGS)}, got {isa!r}")
    return isa


def cache_dir() -> Path:
    """The build cache's folder (``SOFTMAXLOSS_EXT_DIR``, or the per-user default)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return Path(tempfile.gettempdir()) / f"softmaxloss-ext-{user}"


def _private_cache() -> Path:
    """The cache folder, created if needed; the shared default must be this user's alone
    (a library is loaded from it)."""
    root = cache_dir()
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not os.environ.get(ENV_DIR) and hasattr(os, "getuid"):
        st = root.stat()
        if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise PermissionError(
                f"{root} is not private to this user (owner uid {st.st_uid}, mode "
                f"{stat.S_IMODE(st.st_mode):o}); set {ENV_DIR} to a folder of yours"
            )
    return root


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (released by the kernel if the holder dies)."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): the atomic rename alone guards the folder
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_BUILDER = """
import sys
from torch.utils import cpp_extension
name, source, folder, cflags, ldflags = sys.argv[1:6]
cpp_extension.load(name=name, sources=[source], build_directory=folder, verbose=False,
                   extra_cflags=cflags.split(), extra_ldflags=ldflags.split())
"""


def _library(folder: Path, module_name: str) -> Path:
    return folder / f"{module_name}{'.pyd' if os.name == 'nt' else '.so'}"


def _build_into(root: Path, module_name: str, key: dict, source: bytes) -> None:
    """Builds ``source`` in a temporary folder of ``root`` and renames it to its name."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{module_name}-", dir=root))
    try:
        (tmp / SOURCE.name).write_bytes(source)  # the bytes of the key, at a fixed path
        (tmp / "key.json").write_text(json.dumps(key, indent=1, sort_keys=True) + "\n")
        proc = subprocess.run(
            [sys.executable, "-c", _BUILDER, module_name, str(tmp / SOURCE.name), str(tmp)]
            + [" ".join(key["cflags"]), " ".join(key["ldflags"])],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0 or not _library(tmp, module_name).is_file():
            tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
            raise RuntimeError(f"Error building extension {module_name!r}: {tail}")
        try:  # atomic: the folder appears built or not at all
            os.rename(tmp, root / module_name)
        except OSError:  # published meanwhile by a builder that holds no lock (no fcntl)
            if not _library(root / module_name, module_name).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@functools.cache
def build(isa: str | None = None):
    """The compiled module for ``isa`` (default: this process's): loaded from the cache, or
    built into it first. Raises what the build raises."""
    key = build_key(_check_isa(isa), source := SOURCE.read_bytes())
    module_name = name_of(key)
    root = _private_cache()
    library = _library(root / module_name, module_name)
    if not library.is_file():
        with _locked(root / f"{module_name}.lock"):
            if not library.is_file():  # another process may have built it meanwhile
                _build_into(root, module_name, key, source)
    spec = importlib.util.spec_from_file_location(module_name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clear() -> int:
    """Removes every build (and lock, and leftover of a killed build) from the cache; returns
    how many builds were removed."""
    root = cache_dir()
    if not root.is_dir():
        return 0
    removed = 0
    for entry in root.iterdir():
        if not entry.name.lstrip(".").startswith(PREFIX):
            continue
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed += not entry.name.startswith(".")
        else:
            entry.unlink(missing_ok=True)
    return removed


def _ninja_runs() -> bool:
    """``torch.utils.cpp_extension.is_ninja_available``'s test (``ninja --version`` runs),
    without importing that module here: its import logs a warning on stderr wherever a CUDA
    toolkit is installed and no GPU is (``No CUDA runtime is found``), in every user's
    process, for a build that is CPU-only and runs in a subprocess of its own."""
    try:
        subprocess.run(
            ["ninja", "--version"], capture_output=True, stdin=subprocess.DEVNULL, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def unavailable_reason() -> str | None:
    """Why the extension will not be used, or None. Cheap: builds nothing."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return f"{ENV_SWITCH}=0"
    if _failure:
        return _failure[0]
    if not _ninja_runs():
        return "ninja is not installed (pip install ninja), so torch cannot build extensions"
    cxx = _compiler()
    if not shutil.which(cxx):
        return f"no C++ compiler ({cxx!r} is not on PATH)"
    return None


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
            reason = f"the C++ Functions did not build: {type(exc).__name__}: {exc}"
            _failure.append(reason.splitlines()[0][:500])
            warnings.warn(
                f"{_failure[0]}; using the Python Functions", RuntimeWarning, stacklevel=3
            )
    _loaded.append(mod)
    return mod


def status() -> str:
    """One line: whether small CPU calls run the C++ Functions, and why not."""
    reason = unavailable_reason()
    if reason is not None:
        return f"Python Functions ({reason})"
    return f"C++ Functions {name()} ({instruction_set()}, cache {cache_dir()})"
