"""The host step of a radix select over many arrays, shared by the CPU and CUDA kernels.

Between digit levels both devices read back small histograms and pick the
bucket holding the ``k``-th smallest key here, in NumPy, so the two agree by
construction (plain NumPy: importing it loads neither Numba nor CuPy).
"""

from __future__ import annotations

import numpy as np


def pick_bucket(
    hist: np.ndarray, base: np.ndarray, equal: np.ndarray, need: int, k: int,
    lo: np.ndarray | None, hi: np.ndarray | None,
) -> tuple[int, np.ndarray, np.ndarray, int]:
    """``(bucket, base, equal, need)`` after one digit level.

    Per array (``lo`` / ``hi`` given, ``hist`` of shape ``(arrays, bins)``):
    the first bucket whose cumulative counts, each array clamped to its
    ``[lo, hi]``, reach ``k``; ``base`` becomes each array's count below that
    bucket and ``equal`` its count in it. Pooled (``lo`` None, ``hist`` of
    shape ``(1, bins)`` or ``(bins,)``): the bucket holding the ``need``-th
    key; ``need`` and ``base[0]`` move past the keys below it.
    """
    if lo is not None:
        cum = base[:, None] + np.cumsum(hist, axis=1)
        reached = np.clip(cum, lo[:, None], hi[:, None]).sum(axis=0)
        bucket = int(np.searchsorted(reached, k))  # the first boundary reaching k
        if bucket:
            base = cum[:, bucket - 1].copy()
        return bucket, base, hist[:, bucket].copy(), need
    totals = np.reshape(hist, -1)
    cumulative = np.cumsum(totals)
    bucket = int(np.searchsorted(cumulative, need))
    below = int(cumulative[bucket] - totals[bucket])
    base[0] += below
    equal[0] = totals[bucket]
    return bucket, base, equal, need - below
