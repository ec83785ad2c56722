"""Argument checks shared by every entry point.

Every check runs before any arithmetic, and every error names the argument and the
offending value, so a bad call never produces a number.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch

REDUCTIONS = ("none", "mean", "sum")


@dataclass(frozen=True)
class Spec:
    """What the checks learned about a call: the layout the kernels work on."""

    num_classes: int
    prob_target: bool  # True: class-probability targets, False: class indices
    unbatched: bool  # input of shape (C,)


def check_input(input) -> None:
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if not input.is_floating_point():
        raise TypeError(
            f"input must be a floating-point tensor (float16, bfloat16, float32, float64), "
            f"got dtype {input.dtype}"
        )
    if input.dim() == 0:
        raise ValueError("input must have at least one dimension (C,), got a 0-dim tensor")


def check_target(input: torch.Tensor, target, ignore_index: int | None) -> Spec:
    """Checks target's type, device, shape and (for class indices) range.

    ``ignore_index=None`` means no index is ignored: every entry must lie in [0, C).
    """
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.device != input.device:
        raise ValueError(
            f"target is on device {target.device} but input is on device {input.device}"
        )
    unbatched = input.dim() == 1
    num_classes = input.shape[0] if unbatched else input.shape[1]
    if num_classes == 0:
        raise ValueError(f"input has 0 classes (shape {tuple(input.shape)})")
    if target.is_floating_point():
        if ignore_index is not None and ignore_index != -100:
            raise ValueError(
                f"ignore_index={ignore_index} is not supported for class-probability targets "
                "(floating target), as in F.cross_entropy"
            )
        if target.shape != input.shape:
            raise ValueError(
                "target holds class probabilities (floating dtype) and must have the "
                f"input's shape {tuple(input.shape)}, got {tuple(target.shape)}"
            )
        return Spec(num_classes, prob_target=True, unbatched=unbatched)
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(
            f"target must hold class indices (an integer dtype) or class probabilities "
            f"(a floating dtype), got dtype {target.dtype}"
        )
    expected = () if unbatched else (input.shape[0], *input.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target of class indices must have shape {expected} for input of shape "
            f"{tuple(input.shape)}, got {tuple(target.shape)}"
        )
    if target.numel():
        bad = (target < 0) | (target >= num_classes)
        if ignore_index is not None:
            bad &= target != ignore_index
        if bool(bad.any()):
            value = int(target[bad].flatten()[0])
            ignored = "" if ignore_index is None else f" and not ignore_index={ignore_index}"
            raise IndexError(
                f"target contains class index {value}, outside [0, {num_classes}){ignored}"
            )
    return Spec(num_classes, prob_target=False, unbatched=unbatched)


def check_options(
    input: torch.Tensor, num_classes: int, weight, reduction, label_smoothing
) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, numbers.Real):
        raise TypeError(
            f"label_smoothing must be a float in [0, 1], got {type(label_smoothing).__name__}"
        )
    if not 0.0 <= float(label_smoothing) <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
    if weight is None:
        return
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor or None, got {type(weight).__name__}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, got dtype {weight.dtype}")
    if weight.dim() != 1 or weight.shape[0] != num_classes:
        raise ValueError(
            f"weight must be a 1-D tensor of length {num_classes} (the number of classes), "
            f"got shape {tuple(weight.shape)}"
        )
    if weight.device != input.device:
        raise ValueError(
            f"weight is on device {weight.device} but input is on device {input.device}"
        )
    if weight.requires_grad and torch.is_grad_enabled():
        raise ValueError(
            "weight requires grad: no implementation differentiates with respect to weight "
            "(F.cross_entropy refuses it too); pass weight.detach()"
        )


def check_all(input, target, weight, ignore_index, reduction, label_smoothing) -> Spec:
    check_input(input)
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")
    spec = check_target(input, target, ignore_index)
    check_options(input, spec.num_classes, weight, reduction, label_smoothing)
    return spec


def refuse_double_backward() -> None:
    """Called first in every hand-written backward.

    Under ``create_graph=True`` the gradient would be returned as a constant, so anything
    differentiated through it (a gradient penalty) would silently miss this term.
    """
    if torch.is_grad_enabled():
        raise RuntimeError(
            "the hand-written softmax cross-entropy gradient is not differentiable "
            "(create_graph=True / double backward); use impl='autograd' or impl='torch'"
        )


def check_registry_call(logits, target) -> None:
    """The registry's contract: (N, C) float logits, (N,) class indices in [0, C)."""
    check_input(logits)
    if logits.dim() != 2:
        raise ValueError(
            f"logits must have shape (N, C) for registry implementations, "
            f"got shape {tuple(logits.shape)}"
        )
    if isinstance(target, torch.Tensor) and target.is_floating_point():
        raise TypeError(
            f"target must hold int64 class indices for registry implementations, "
            f"got dtype {target.dtype}"
        )
    check_target(logits, target, ignore_index=None)
