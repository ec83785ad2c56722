"""The package's exception types. A leaf module: it imports nothing of the package."""

from __future__ import annotations


class UnsupportedDtypeError(TypeError):
    """An implementation does not support the logits' dtype (e.g. the naive pair on bf16).

    Benchmarks skip exactly this error; any other ``TypeError`` is a failure.
    """
