"""The backend seam: one function per job, each choosing its implementation here and nowhere else.

Masks, scores, the model, the strategies and calibration call these
functions with the caller's arrays and get arrays of the caller's library,
dtype and device back. :func:`_choose` names the backend for the arrays at
hand:

==============  ==================================  =========================================
backend         arrays                              implementation
==============  ==================================  =========================================
``host``        NumPy, dense CPU torch              Numba kernels: :mod:`.host`, on the
                                                    views of :mod:`.bridge` (no copy)
``cuda``        CuPy, torch on CUDA                 slot, not written: CUDA kernels through
                                                    :func:`.bridge.device_view` (DLPack)
``dask``        dask arrays                         slot, not written: blockwise over the
                                                    other backends
``reference``   everything else (JAX,               standard-only: :mod:`.reference`;
                array-api-strict, ...)              the test oracle
==============  ==================================  =========================================

A job whose inputs the chosen backend cannot take (empty norms, blocks over
more than two axes) runs the reference. Nothing outside this package imports
a kernel module; the kernel modules load on a job's first use.

NaN scores raise here, with their count, whichever implementation ran
(:func:`_raise_nan`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from . import bridge, host, reference

__all__ = [
    "block_norms",
    "cholesky_inverse_base",
    "count_nan",
    "global_keep",
    "nm_keep",
    "result_float",
    "slice_norms",
    "sparsegpt_sweep",
    "sum_squares",
    "topk_keep",
]

Array = Any

#: The backends tried in order, each with the test its arrays must all pass; ``None``
#: marks a slot whose backend is not written yet. Arrays no backend claims run the
#: standard-only ``"reference"``.
_SLOTS: dict[str, Callable[[Array], bool] | None] = {
    "host": bridge.is_host,
    "cuda": None,  # CuPy and torch-CUDA arrays, through bridge.device_view; kernels in _kernels/cuda
    "dask": None,  # dask arrays, blockwise over the backend of their chunks
}


def _choose(*arrays: Array) -> str:
    """The backend that runs a job on ``arrays`` (one library and device): a key of
    :data:`_SLOTS` or ``"reference"``."""
    for name, claims in _SLOTS.items():
        if claims is not None and all(claims(a) for a in arrays):
            return name
    return "reference"


def _raise_nan(name: str, count: int) -> None:
    msg = (
        f"{name} contains {count} NaN value(s); NaN has no rank. "
        "Replace them first, e.g. with xp.where(xp.isnan(s), -xp.inf, s) to prune them first"
    )
    raise ValueError(msg)


# -- NaN count, selection, norms ------------------------------------------------------------
def count_nan(xp: ModuleType, x: Array) -> int:
    """Number of NaN values in ``x`` (0 for integer dtypes)."""
    if _choose(x) == "host":
        return host.count_nan(x)
    return reference.count_nan(xp, x)


def topk_keep(xp: ModuleType, x: Array, n_prune: int, *, magnitude: bool, name: str) -> Array:
    """Keep-mask pruning exactly ``n_prune`` smallest values (ties: lower flat index first).

    ``name`` names ``x`` in the error NaN values raise.
    """
    if _choose(x) == "host":
        keep, nans = host.topk_keep(x, n_prune, magnitude)
    else:
        nans = reference.count_nan(xp, x)
        keep = None if nans else reference.topk_keep(xp, x, n_prune, magnitude)
    if nans:
        _raise_nan(name, nans)
    return keep


def nm_keep(xp: ModuleType, x: Array, n: int, m: int, axis: int, *, magnitude: bool, name: str) -> Array:
    """Keep-mask with ``n`` zeros in each group of ``m`` along ``axis`` (ties: lower position first)."""
    if _choose(x) == "host":
        keep, nans = host.nm_keep(x, n, m, axis, magnitude)
    else:
        nans = reference.count_nan(xp, x)
        keep = None if nans else reference.nm_keep(xp, x, n, m, axis, magnitude)
    if nans:
        _raise_nan(name, nans)
    return keep


def slice_norms(xp: ModuleType, x: Array, axis: int, ord: float) -> Array:
    """Lp norm of each slice along ``axis``, in the result float dtype of ``x``."""
    dtype = result_float(xp, x)
    if _choose(x) == "host" and math.prod(x.shape):
        return xp.astype(host.slice_norms(x, axis, ord), dtype)
    return xp.astype(reference.slice_norms(xp, x, axis, ord), dtype)


def block_norms(xp: ModuleType, x: Array, block: tuple[int, ...], ord: float) -> Array:
    """Lp norm of each tile of shape ``block`` over the trailing axes."""
    dtype = result_float(xp, x)
    if _choose(x) == "host" and math.prod(x.shape) and len(block) <= 2:
        return xp.astype(host.block_norms(x, block, ord), dtype)
    return xp.astype(reference.block_norms(xp, x, block, ord), dtype)


def result_float(xp: ModuleType, x: Array) -> Any:
    """Float dtype of a norm of ``x``: its own if floating, else the default float."""
    if xp.isdtype(x.dtype, "real floating"):
        return x.dtype
    return reference.default_float(xp, x)


# -- global threshold over many arrays ----------------------------------------------------
def global_keep(
    xp: ModuleType, arrays: list[Array], names: list[str], k: int, lo: list[int], hi: list[int], *,
    magnitude: bool,
) -> list[tuple[Array, int, int]]:
    """One exact threshold over ``arrays``: ``(keep, pruned, unclamped)`` for each.

    The ``k`` lowest values of all arrays together are pruned (ties: earlier
    arrays, then lower flat indices, first), each array pruning between
    ``lo[i]`` and ``hi[i]`` values; ``unclamped`` is its count before those
    bounds. Requires ``sum(lo) <= k <= sum(hi)``. ``names`` name the arrays
    in the error NaN values raise.
    """
    if _choose(*arrays) == "host":

        def on_nan(i: int, count: int) -> None:
            _raise_nan(names[i], count)

        return host.global_keep(arrays, k, lo, hi, magnitude, on_nan)
    for a, name in zip(arrays, names):
        nans = reference.count_nan(xp, a)
        if nans:
            _raise_nan(name, nans)
    return reference.global_keep(xp, arrays, k, lo, hi, magnitude)


# -- calibration --------------------------------------------------------------------------
def sum_squares(xp: ModuleType, x2: Array, acc: Any) -> Array:
    """``sum(x2[:, j] ** 2)`` over the rows of the 2-D ``x2``, accumulated in the float dtype ``acc``."""
    if _choose(x2) == "host" and math.prod(x2.shape):
        return host.sum_squares(xp, x2, acc)
    return reference.sum_squares(xp, x2, acc)


# -- SparseGPT ----------------------------------------------------------------------------
def sparsegpt_sweep(
    xp: ModuleType, weights: Array, hessian: Array,
    prepare: Callable[[ModuleType, Array, Array], tuple[Array, Array]],
    counts: list[int] | None, nm: tuple[int, int] | None, block_size: int,
) -> tuple[Array, Array]:
    """SparseGPT's column sweep: ``(updated_weights, keep)`` in the weights' library.

    ``prepare(namespace, weights, hessian)`` gives the weights and ``U`` (the
    upper Cholesky factor of the dampened ``H^-1``) in that namespace: the
    host runs it in NumPy on the arrays' memory, the reference in ``xp``.
    Unstructured: ``counts`` is each block's pruned count; N:M: ``nm = (n, m)``.
    The result is in the compute dtype ``prepare`` chose.
    """
    if _choose(weights, hessian) == "host" and math.prod(weights.shape):
        return host.sparsegpt_sweep(weights, hessian, prepare, counts, nm, block_size)
    w, u = prepare(xp, weights, hessian)
    return reference.sparsegpt_sweep(xp, w, u, counts, nm, block_size)


def cholesky_inverse_base(xp: ModuleType, k: Array) -> Array:
    """``L^-1`` where ``L L^T = k``: the small base case of SparseGPT's recursive factorisation.

    The host kernel takes NumPy matrices, which is what the host sweep
    prepares on; a matrix of any other library (torch included: its
    importance scores prepare in torch) uses its library's ``cholesky`` and
    ``inv``. ``ValueError`` (or the library's error) when ``k`` is not
    positive definite.
    """
    if _choose(k) == "host" and isinstance(k, np.ndarray):
        return host.cholesky_inverse_base(k)
    return reference.cholesky_inverse_base(xp, k)
