"""``python -m softmaxloss build-ext``: builds the C++ Functions for the CPU now.

    python -m softmaxloss build-ext            # this CPU's instruction set (as ATen's)
    python -m softmaxloss build-ext AVX2       # also the build valgrind runs (no AVX-512)
    python -m softmaxloss build-ext --clear    # empty the build cache

The first small CPU call would otherwise build it (~40-60 s on two cores, once per content:
``softmaxloss/_cpu_ext.py``); ``make install`` and asv's install step run this, so no test
or benchmark process pays for the build. A build already in the cache only loads.

Exit status: 0 built or loaded (or not built, with the reason, where no compiler works: the
Python Functions then serve every call); 2 a bad argument; 3 the build failed (the
compiler's error on stderr). The measuring tools are ``python -m lossbench``.
"""

from __future__ import annotations

import argparse
import sys

from softmaxloss import _cpu_ext


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv=None) -> int:
    parser = _Parser(prog="python -m softmaxloss", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="<command>", parser_class=_Parser
    )
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
    args = parser.parse_args(argv)
    unknown = [isa for isa in args.isa if isa not in _cpu_ext.ISA_FLAGS]
    if unknown:
        p.error(f"ISA must be one of {', '.join(_cpu_ext.ISA_FLAGS)}, got {', '.join(unknown)}")
    if args.clear:
        if args.isa:
            p.error("--clear takes no ISA: it empties the whole cache")
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
            print(
                f"python -m softmaxloss build-ext: error: the {isa} build failed: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            return 3
        print(f"C++ Functions {_cpu_ext.name(isa)}: {module.__file__}")
    return 0


if __name__ == "__main__":  # not when a spawned worker re-imports the main module
    sys.exit(main())
