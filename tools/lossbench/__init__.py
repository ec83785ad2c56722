"""lossbench: the measuring tools of softmaxloss, apart from the loss.

The asv suite's helpers (regression gate, paired timings, detection study, history,
backfill, checked merge, offline site), the measurement harness, the exact reference and
the experiments (``compare``, ``ratios``, ``overhead``, ``depth``). It imports
``softmaxloss``; ``softmaxloss`` never imports it. Run ``python -m lossbench --help``.

This package's ``__init__`` imports nothing: the asv benchmarks load ``lossbench.harness``
and ``lossbench.reference`` from the working tree into every benchmark process.
"""
