"""The one rule for the pruned count, and the shared argument checks."""

from __future__ import annotations

import numpy as np
import pytest

from arraysparse._validation import check_nm, normalize_axis, prune_count


@pytest.mark.parametrize(
    ("sparsity", "size", "count"),
    [
        (0.5, 5, 2),  # round half to even, as torch.nn.utils.prune
        (0.5, 7, 4),
        (0.5, 6, 3),
        (0.3, 10, 3),
        (0.0, 9, 0),
        (1.0, 9, 9),
        (1, 9, 1),  # an int is a count
        (9, 9, 9),
        (0, 0, 0),
        (0.5, 0, 0),
        (np.float32(0.25), 8, 2),
        (np.int64(3), 8, 3),
    ],
)
def test_prune_count(sparsity, size, count) -> None:
    assert prune_count(sparsity, size) == count


def test_prune_count_matches_torch() -> None:
    from torch.nn.utils.prune import _compute_nparams_toprune

    for size in range(0, 40):
        for s in np.linspace(0, 1, 41):
            assert prune_count(float(s), size) == _compute_nparams_toprune(float(s), size)


@pytest.mark.parametrize(
    ("sparsity", "exc", "match"),
    [
        (-0.01, ValueError, r"sparsity=-0.01 must be a fraction in \[0, 1\]"),
        (1.01, ValueError, "sparsity=1.01"),
        (float("nan"), ValueError, "sparsity=nan"),
        (True, TypeError, "sparsity=True is a bool"),
        (np.bool_(False), TypeError, "is a bool"),
        (11, ValueError, r"sparsity=11 is a count of items to prune and must lie in \[0, 10\]"),
        (-1, ValueError, "sparsity=-1"),
        ("0.5", TypeError, "got str"),
        (None, TypeError, "got NoneType"),
    ],
)
def test_prune_count_refuses(sparsity, exc, match) -> None:
    with pytest.raises(exc, match=match):
        prune_count(sparsity, 10)


def test_axis_and_nm_checks() -> None:
    assert normalize_axis(-1, 3) == 2
    assert check_nm(np.int32(2), 4) == (2, 4)
    with pytest.raises(ValueError, match="axis=3 is out of range for an array of 3"):
        normalize_axis(3, 3)
    with pytest.raises(TypeError, match="axis must be an int"):
        normalize_axis(True, 3)
