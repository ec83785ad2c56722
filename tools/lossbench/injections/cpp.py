"""C++ injections: edits of the C++ Functions' source (``softmaxloss/csrc/*.cpp``).

Each function takes the source text and returns it edited. Each edit is anchored on a line
of the source it expects exactly once; a source without it (the C++ changed) is refused
with ``ValueError`` naming the anchor, never edited somewhere else. The results of the
loss are unchanged by every edit: only the time, the instructions or the memory traffic
move. ``tests/test_injections.py`` checks that every edit applies to the current source.
"""

from __future__ import annotations

# manual's forward: one row's max and log-sum-exp, inside loss_rows' parallel row loop
ROW = "      row_max_log_sum_exp(xp + n * C, C, m, log_s, next);\n"
GRAIN = "constexpr int64_t kGrain = 16;"
MAX_WAY = "a[k] = at::vec::maximum(a[k], L::load(x + c + k * W));"
SUM_WAY = "a[k] = a[k] + v;"
INCLUDES = "#include <limits>\n"
LOSS_ROWS_LOOP = (
    "  const int64_t* tp = t.const_data_ptr<int64_t>();\n"
    "  at::parallel_for(0, M, kGrain, [&](int64_t begin, int64_t end) {\n"
    "    for (int64_t n = begin; n < end; ++n) {\n"
    "      A m, log_s;\n"
)


def _replace(source: str, anchor: str, new: str) -> str:
    found = source.count(anchor)
    if found != 1:
        raise ValueError(
            f"anchor {anchor.strip()!r} found {found} times in the C++ source, not once"
        )
    return source.replace(anchor, new)


def _second_sum(condition: str) -> str:
    """The row's sum of exponentials once more where ``condition`` holds, added as 0 * s (the
    loss is unchanged, the work is not)."""
    return (
        f"      if ({condition})\n"
        "        log_s += A(0) * row_sum_exp<T>(xp + n * C, C, m, nullptr, xp + n * C);\n"
    )


def extra_pass(source: str, every: int) -> str:
    """manual's forward computes each ``every``-th row's sum of exponentials twice."""
    return _replace(source, ROW, ROW + _second_sum(f"n % {every} == 0"))


def widened_extra_pass(source: str, every: int) -> str:
    """:func:`extra_pass` in the bfloat16/float16 path only (the logits' type widened to
    float32, ``Lanes<T>::kWidened``): float32 and float64 calls run the same code as before,
    so only the low-precision rows can see it."""
    return _replace(source, ROW, ROW + _second_sum(f"Lanes<T>::kWidened && n % {every} == 0"))


def native_only_extra_pass(source: str, every: int) -> str:
    """:func:`extra_pass`, but only where the program is not run by valgrind: a slowdown of
    the build users run that instruction counts cannot see (on a machine with AVX-512, an
    edit of the AVX-512 build alone does the same)."""
    source = _replace(source, INCLUDES, INCLUDES + "#include <valgrind/valgrind.h>\n")
    return _replace(source, ROW, ROW + _second_sum(f"!RUNNING_ON_VALGRIND && n % {every} == 0"))


def one_accumulator(source: str) -> str:
    """The row max and sum keep one vector accumulator instead of four (the same
    instructions; each vector waits on the previous one: a lost unrolling)."""
    source = _replace(source, MAX_WAY, "a[0] = at::vec::maximum(a[0], L::load(x + c + k * W));")
    return _replace(source, SUM_WAY, "a[0] = a[0] + v;")


def memory_sweep(source: str) -> str:
    """manual's forward first reads one value of every cache line of the logits (a second
    trip through memory for few instructions: 1 load in 16 float32 values)."""
    sweep = (
        "  {  // detection study: one more trip over every cache line of the logits\n"
        "    const T* xs = x.const_data_ptr<T>();\n"
        "    A acc = A(0);\n"
        "    for (int64_t i = 0; i < M * C; i += 64 / sizeof(T)) acc += static_cast<A>(xs[i]);\n"
        "    volatile A sink = acc;\n"
        "    (void)sink;\n"
        "  }\n"
    )
    head, _, _ = LOSS_ROWS_LOOP.partition("  at::parallel_for")
    return _replace(source, LOSS_ROWS_LOOP, head + sweep + LOSS_ROWS_LOOP[len(head) :])


def serial_rows(source: str) -> str:
    """The row loops run on one thread: a grain larger than any row count (at::parallel_for
    runs a range below its grain inline)."""
    return _replace(
        source, GRAIN, "constexpr int64_t kGrain = std::numeric_limits<int64_t>::max();"
    )
