"""Every bad-input case of issue 2: the exception type, and a message naming the argument and
the offending value, for ``cross_entropy`` (every impl), the module and every registry entry.

The "meta" device stands in for a second device (no GPU here): a tensor on it is on a
different device from CPU logits, and any arithmetic on the CPU side would still run.
"""

from __future__ import annotations

import re

import pytest
import torch

import softmaxloss
from softmaxloss import IMPL_CHOICES, SoftmaxCrossEntropyLoss, cross_entropy

REGISTRY = tuple(softmaxloss.IMPLEMENTATIONS)

X = torch.randn(4, 3)
T = torch.tensor([0, 2, 1, 2])

# (name, input, target, kwargs, exception, message regex)
FUNCTIONAL_CASES = [
    ("target_too_large", X, torch.tensor([0, 3, 1, 2]), {}, IndexError, r"class index 3.*\[0, 3\)"),
    ("target_negative", X, torch.tensor([0, -1, 1, 2]), {}, IndexError, r"class index -1"),
    ("target_far_out", X, torch.tensor([0, 1, 1, 10**6]), {}, IndexError, r"index 1000000"),
    (
        "target_is_ignore_of_other_value",
        X,
        torch.tensor([0, -100, 1, 2]),
        {"ignore_index": 5},
        IndexError,
        r"class index -100.*ignore_index=5",
    ),
    ("target_batch_mismatch", X, torch.tensor([0, 1, 2]), {}, ValueError, r"target.*\(3,\)"),
    ("target_extra_dim", X, T[:, None], {}, ValueError, r"target.*\(4, 1\)"),
    (
        "kdim_target_mismatch",
        torch.randn(2, 3, 5),
        torch.zeros(2, 4, dtype=torch.long),
        {},
        ValueError,
        r"target.*\(2, 5\).*\(2, 4\)",
    ),
    ("unbatched_target_shape", torch.randn(3), T, {}, ValueError, r"target.*\(4,\)"),
    (
        "prob_target_wrong_shape",
        X,
        torch.full((4, 2), 0.5),
        {},
        ValueError,
        r"target.*probabilit.*\(4, 3\).*\(4, 2\)",
    ),
    ("integer_logits", torch.zeros(4, 3, dtype=torch.long), T, {}, TypeError, r"input.*int64"),
    ("bool_logits", torch.zeros(4, 3, dtype=torch.bool), T, {}, TypeError, r"input.*bool"),
    ("logits_not_tensor", [[0.0, 1.0, 2.0]], T[:1], {}, TypeError, r"input.*list"),
    ("float_target_dtype_int_like", X, T.to(torch.bool), {}, TypeError, r"target.*bool"),
    ("weight_too_short", X, T, {"weight": torch.ones(2)}, ValueError, r"weight.*3.*\(2,\)"),
    ("weight_2d", X, T, {"weight": torch.ones(1, 3)}, ValueError, r"weight.*\(1, 3\)"),
    (
        "weight_other_device",
        X,
        T,
        {"weight": torch.ones(3, device="meta")},
        ValueError,
        r"weight.*device meta",
    ),
    ("weight_integer", X, T, {"weight": torch.ones(3, dtype=torch.long)}, TypeError, r"weight"),
    ("reduction_unknown", X, T, {"reduction": "avg"}, ValueError, r"reduction.*'avg'"),
    (
        "label_smoothing_above_1",
        X,
        T,
        {"label_smoothing": 1.5},
        ValueError,
        r"label_smoothing.*1\.5",
    ),
    ("label_smoothing_negative", X, T, {"label_smoothing": -0.1}, ValueError, r"smoothing.*-0\.1"),
    ("label_smoothing_nan", X, T, {"label_smoothing": float("nan")}, ValueError, r"smoothing.*nan"),
    ("label_smoothing_str", X, T, {"label_smoothing": "0.1"}, TypeError, r"label_smoothing.*str"),
    (
        "target_other_device",
        X,
        T.to("meta"),
        {},
        ValueError,
        r"target.*device meta.*input.*device cpu",
    ),
]


@pytest.mark.parametrize("impl", IMPL_CHOICES)
@pytest.mark.parametrize(
    ("input", "target", "kwargs", "exc", "match"),
    [c[1:] for c in FUNCTIONAL_CASES],
    ids=[c[0] for c in FUNCTIONAL_CASES],
)
def test_cross_entropy_bad_input(impl, input, target, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cross_entropy(input, target, impl=impl, **kwargs)


@pytest.mark.parametrize(
    ("input", "target", "kwargs", "exc", "match"),
    [c[1:] for c in FUNCTIONAL_CASES if c[0] not in ("reduction_unknown",)],
    ids=[c[0] for c in FUNCTIONAL_CASES if c[0] not in ("reduction_unknown",)],
)
def test_module_bad_input(input, target, kwargs, exc, match):
    module = SoftmaxCrossEntropyLoss(**kwargs)
    with pytest.raises(exc, match=match):
        module(input, target)


def test_unknown_impl_lists_accepted_values():
    accepted = r".*".join(re.escape(repr(i)) for i in IMPL_CHOICES)
    with pytest.raises(ValueError, match=rf"impl must be one of .*{accepted}.*got 'cuda_kernel'"):
        cross_entropy(X, T, impl="cuda_kernel")
    with pytest.raises(ValueError, match=rf"impl.*{accepted}.*'nope'"):
        SoftmaxCrossEntropyLoss(impl="nope")


def test_module_refuses_unknown_reduction_at_construction():
    with pytest.raises(ValueError, match=r"reduction.*'avg'"):
        SoftmaxCrossEntropyLoss(reduction="avg")


def test_weight_requiring_grad_is_refused():
    w = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"weight requires grad"):
        cross_entropy(X, T, w)


@pytest.mark.parametrize("impl", IMPL_CHOICES)
def test_out_of_range_index_never_gives_a_number_even_with_ignore_or_kdim(impl):
    for x, t, kw in [
        (torch.randn(3, 4, 2), torch.tensor([[0, 1], [4, 2], [3, 3]]), {}),
        (torch.randn(4), torch.tensor(4), {}),
        (X, torch.tensor([0, 1, -100, 3]), {"ignore_index": -100}),
        (X, T, {"ignore_index": 3, "label_smoothing": 0.2}),  # fine: 3 is never used
    ]:
        if int(t.max()) < x.shape[1 if x.dim() > 1 else 0]:
            assert torch.isfinite(cross_entropy(x, t, impl=impl, **kw))
            continue
        with pytest.raises(IndexError, match=rf"class index {int(t.max())}"):
            cross_entropy(x, t, impl=impl, **kw)


def test_errors_come_before_any_work_on_the_input():
    """fused+inplace overwrites its input: a bad call must leave it untouched."""
    h = torch.randn(4, 3, requires_grad=True)
    x = h * 1.0
    before = x.detach().clone()
    for bad_target, kw in [
        (torch.tensor([0, 1, 2, 7]), {}),
        (T, {"weight": torch.ones(5)}),
        (T, {"label_smoothing": 2.0}),
        (T, {"reduction": "bad"}),
    ]:
        with pytest.raises((IndexError, ValueError)):
            cross_entropy(x, bad_target, impl="fused", inplace=True, **kw)
        assert torch.equal(x.detach(), before)


# ---------------------------------------------------------------------------------------
# Registry callables: (N, C) float logits, (N,) int64 targets in [0, C), no ignore_index
# ---------------------------------------------------------------------------------------
REGISTRY_CASES = [
    ("target_too_large", X, torch.tensor([0, 3, 1, 2]), IndexError, r"class index 3.*\[0, 3\)"),
    ("target_negative", X, torch.tensor([0, -1, 1, 2]), IndexError, r"class index -1"),
    ("target_minus_100", X, torch.tensor([0, -100, 1, 2]), IndexError, r"class index -100"),
    ("target_batch_mismatch", X, torch.tensor([0, 1]), ValueError, r"target.*\(4,\).*\(2,\)"),
    ("integer_logits", torch.ones(4, 3, dtype=torch.int32), T, TypeError, r"int32"),
    ("logits_1d", torch.randn(3), torch.tensor(1), ValueError, r"logits.*\(N, C\).*\(3,\)"),
    ("logits_3d", torch.randn(4, 3, 2), T, ValueError, r"logits.*\(N, C\).*\(4, 3, 2\)"),
    ("prob_target", X, torch.full((4, 3), 1 / 3), TypeError, r"target.*class indices.*float32"),
    ("target_other_device", X, T.to("meta"), ValueError, r"target.*device meta"),
    ("target_not_tensor", X, [0, 1, 2, 0], TypeError, r"target.*list"),
]


@pytest.mark.parametrize("name", REGISTRY)
@pytest.mark.parametrize(
    ("logits", "target", "exc", "match"),
    [c[1:] for c in REGISTRY_CASES],
    ids=[c[0] for c in REGISTRY_CASES],
)
def test_registry_bad_input(name, logits, target, exc, match):
    fn = softmaxloss.IMPLEMENTATIONS[name]
    with pytest.raises(exc, match=match):
        fn(logits, target)
