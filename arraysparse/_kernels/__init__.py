"""Kernel dispatch: one entry point per job, one implementation per backend.

Each job takes the caller's array and returns an array of the caller's
namespace and device. NumPy arrays and CPU torch tensors go to the Numba
kernels in :mod:`.cpu` through a zero-copy view; everything else runs the
standard-only implementation in :mod:`.reference`. A CUDA module slots in as
one more branch of :func:`_native`, with the same job signatures.

NaN scores raise here, with their count, whichever implementation ran.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from .._compat import from_host, host_view
from . import reference

Array = Any


def _raise_nan(name: str, count: int) -> None:
    msg = (
        f"{name} contains {count} NaN value(s); NaN has no rank. "
        "Replace them first, e.g. with xp.where(xp.isnan(s), -xp.inf, s) to prune them first"
    )
    raise ValueError(msg)


def _count_nan_host(a: np.ndarray) -> int:
    return int(np.count_nonzero(np.isnan(a))) if a.dtype.kind == "f" else 0


def topk_keep(xp: ModuleType, x: Array, n_prune: int, *, magnitude: bool, name: str) -> Array:
    """Keep-mask pruning exactly ``n_prune`` smallest values (ties: lower flat index first)."""
    h = host_view(x)
    if h is not None:
        from .cpu import select

        keep, nans = select.topk_keep(h, n_prune, magnitude)
        if nans:
            _raise_nan(name, nans)
        return from_host(keep, x)
    nans = reference.count_nan(xp, x)
    if nans:
        _raise_nan(name, nans)
    return reference.topk_keep(xp, x, n_prune, magnitude)


def nm_keep(xp: ModuleType, x: Array, n: int, m: int, axis: int, *, magnitude: bool, name: str) -> Array:
    """Keep-mask with ``n`` zeros in each group of ``m`` along ``axis`` (ties: lower position first)."""
    h = host_view(x)
    if h is not None:
        from .cpu import nm

        shape = h.shape
        h3 = h.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
        keep, has_nan = nm.nm_keep(h3, n, m, magnitude)
        if has_nan:
            _raise_nan(name, _count_nan_host(h))
        return from_host(keep.reshape(shape), x)
    nans = reference.count_nan(xp, x)
    if nans:
        _raise_nan(name, nans)
    return reference.nm_keep(xp, x, n, m, axis, magnitude)


def slice_norms(xp: ModuleType, x: Array, axis: int, ord: float) -> Array:
    """Lp norm of each slice along ``axis``, in the result float dtype of ``x``."""
    dtype = result_float(xp, x)
    h = host_view(x)
    if h is not None and h.size:
        from .cpu import norms

        shape = h.shape
        h3 = h.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))
        return xp.astype(from_host(norms.slice_norms(h3, ord), x), dtype)
    return xp.astype(reference.slice_norms(xp, x, axis, ord), dtype)


def block_norms(xp: ModuleType, x: Array, block: tuple[int, ...], ord: float) -> Array:
    """Lp norm of each tile of shape ``block`` over the trailing axes."""
    dtype = result_float(xp, x)
    h = host_view(x)
    if h is not None and h.size and len(block) <= 2:
        from .cpu import norms

        b1, b2 = (1, *block) if len(block) == 1 else block
        rows = h.shape[-2] if len(block) == 2 else 1
        cols = h.shape[-1]
        lead = h.shape[: h.ndim - len(block)]
        h5 = h.reshape(math.prod(lead), rows // b1, b1, cols // b2, b2)
        out = norms.block_norms(h5, ord)
        out_shape = lead + tuple(s // b for s, b in zip(h.shape[h.ndim - len(block) :], block))
        return xp.astype(from_host(out.reshape(out_shape), x), dtype)
    return xp.astype(reference.block_norms(xp, x, block, ord), dtype)


def result_float(xp: ModuleType, x: Array) -> Any:
    """Float dtype of a norm of ``x``: its own if floating, else the default float."""
    if xp.isdtype(x.dtype, "real floating"):
        return x.dtype
    return reference.default_float(xp, x)
