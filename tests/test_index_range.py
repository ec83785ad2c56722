"""The class-index range check (``_validate.check_index_range``): one ``aminmax`` on the CPU,
the entry-wise check only when the range leaves ``[0, C)``, and what it proves about
ignored entries (the Functions skip the row mask when none can be ignored)."""

from __future__ import annotations

import pytest
import torch

from softmaxloss._validate import check_index_range


@pytest.mark.parametrize(
    ("target", "ignore_index", "none_ignored"),
    [
        ([0, 1, 2, 2], None, True),
        ([0, 1, 2, 2], -100, True),  # -100 lies outside the targets' range
        ([0, 1, 2, 2], 5, True),
        ([0, 1, 2, 2], 1, False),  # a valid class: some entries may be ignored
        ([0, -100, 2, 1], -100, False),
        ([-100, -100], -100, False),
        ([], -100, True),
    ],
)
def test_what_the_check_proves(target, ignore_index, none_ignored):
    t = torch.tensor(target, dtype=torch.long)
    assert check_index_range(t, 3, ignore_index) is none_ignored


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8])
def test_every_integer_dtype(dtype):
    assert check_index_range(torch.tensor([0, 2, 1], dtype=dtype), 3, -100) is True
    with pytest.raises(IndexError, match=r"class index 3, outside \[0, 3\)"):
        check_index_range(torch.tensor([0, 3, 1], dtype=dtype), 3, -100)


@pytest.mark.parametrize(
    ("target", "ignore_index", "match"),
    [
        ([0, 3, -100], -100, r"class index 3, outside \[0, 3\) and not ignore_index=-100"),
        ([-100, 0, -5], -100, r"class index -5,"),
        ([0, -100, 1], None, r"class index -100, outside \[0, 3\)$"),
        ([1, 4, 1], 1, r"class index 4,"),
        ([-1, 1, 1], 1, r"class index -1,"),
    ],
)
def test_errors_name_the_first_offending_value(target, ignore_index, match):
    with pytest.raises(IndexError, match=match):
        check_index_range(torch.tensor(target), 3, ignore_index)
