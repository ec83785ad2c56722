"""``python -m softmaxloss build-ext``: builds the C++ Functions for the CPU now.

    python -m softmaxloss build-ext            # this CPU's instruction set (as ATen's)
    python -m softmaxloss build-ext AVX2       # also the build valgrind runs (no AVX-512)
    python -m softmaxloss build-ext --clear    # empty the build cache

The first small CPU call would otherwise build it (~40-60 s on two cores, once per content:
``softmaxloss/_cpu_ext.py``); ``make install`` and asv's install step run this, so no test
or benchmark process pays for the build. A build already in the cache only loads. Where it
cannot be built the command says why and exits 0 (the Python Functions serve every call); a
failed build exits 1 with the compiler's error.
"""

from __future__ import annotations

from softmaxloss import _cpu_ext
from softmaxloss.errors import CommandError, UsageError


def add_parser(sub):
    p = sub.add_parser(
        "build-ext",
        help="build the C++ Functions for small CPU calls now (else the first call builds them)",
        description=__doc__.splitlines()[0],
    )
    p.add_argument(
        "isa",
        nargs="*",
        metavar="ISA",
        help=f"instruction sets to build for, of {', '.join(_cpu_ext.ISA_FLAGS)} "
        "(default: the one ATen uses here)",
    )
    p.add_argument("--clear", action="store_true", help="remove every build from the cache")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    unknown = [isa for isa in args.isa if isa not in _cpu_ext.ISA_FLAGS]
    if unknown:
        raise UsageError(
            f"ISA must be one of {', '.join(_cpu_ext.ISA_FLAGS)}, got {', '.join(unknown)}"
        )
    if args.clear:
        if args.isa:
            raise UsageError("--clear takes no ISA: it empties the whole cache")
        removed = _cpu_ext.clear()
        print(f"build cache {_cpu_ext.cache_dir()}: {removed} builds removed")
        return 0
    reason = _cpu_ext.unavailable_reason()
    if reason is not None:
        print(f"C++ Functions not built: {reason}; the Python Functions serve every call")
        return 0
    for isa in args.isa or [_cpu_ext.instruction_set()]:
        try:
            module = _cpu_ext.build(isa)
        except Exception as exc:
            raise CommandError(f"the {isa} build failed: {type(exc).__name__}: {exc}") from exc
        print(f"C++ Functions {_cpu_ext.name(isa)}: {module.__file__}")
    return 0
