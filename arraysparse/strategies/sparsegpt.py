"""SparseGPT: one-shot pruning with optimal-brain-surgeon weight updates (Frantar & Alistarh, 2023).

For a layer ``y = W x`` with weight ``W`` of shape ``(out_features,
in_features)`` and the Hessian ``H = 2 X^T X / n`` of its calibration inputs,
SparseGPT prunes the columns of ``W`` left to right and, after each column,
moves the error it made onto the columns not yet visited so that ``W x``
changes as little as possible. The algorithm, as in the published code:

1. Dead inputs (``H_ii = 0``: the feature was always zero) get ``H_ii = 1``
   and ``W[:, i] = 0``.
2. Dampening: ``H += lambda * mean(diag H) * I`` (``lambda = 0.01``).
3. ``U`` = the upper Cholesky factor of ``H^-1`` (``U^T U = H^-1``).
4. For each block of ``block_size`` (128) columns: choose the block's mask
   (unstructured: the lowest ``w^2 / U_cc^2`` over the whole rows x block
   tile; N:M: per group of ``m`` columns as the sweep reaches it), then for
   each column ``i``: ``err = (w_i - q_i) / U_ii`` (``q_i`` = 0 where pruned,
   ``w_i`` where kept) and ``W[:, i:] -= err (outer) U[i, i:]`` within the
   block; the block's errors update the later blocks in one matrix product
   (the "lazy batch" update).

Differences from the published code, all deliberate:

* Counts follow the library's rule: the layer prunes exactly
  ``round(s * size)`` weights (half to even), spread over the blocks in
  proportion to their width, lowest scores first, ties to the lower flat
  index of the tile. The reference prunes every score ``<=`` the one at
  position ``int(s * tile_size)`` of the sorted tile, one (or more, with
  ties) above ``s``.
* ``U`` is computed as ``J L^-1 J`` with ``L L^T = J H J`` (``J`` reverses
  the order of the features) instead of Cholesky, inverse, Cholesky: the
  same matrix, from one factorisation, which runs by halves in matrix
  products (see ``_cholesky_inverse_factor``).
* N:M ties prune the lower position first (``torch.topk`` leaves it open).

Dask weights run eagerly, one layer at a time: the layer and its Hessian are
computed, swept on the host, and the results come back as Dask arrays in the
weights' chunks, equal to NumPy's bit for bit. (Rows cannot go by bands:
unstructured, a block's count is shared by all its rows; N:M rows are
independent, but BLAS rounds a band's matrix products differently.)

The caller's weights are never modified: :meth:`SparseGPTPruning.prune`
returns the updated weights (pruned entries exactly zero, the others moved)
and the mask.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from fractions import Fraction
from types import ModuleType
from typing import Any

import numpy as np

from .. import _backends
from .._compat import array_namespace, device, isdtype
from .._validation import check_has_zero, positive_int, prune_count
from ..calibration import HessianAccumulator, float_dtype_name
from ..masks import PruningMask
from ..patterns import PatternKind, SparsityPattern
from .base import PruningStrategy, check_gradients

__all__ = ["SparseGPTPruning", "sparsegpt_prune"]

Array = Any

SUPPORTED = (PatternKind.UNSTRUCTURED, PatternKind.STRUCTURED_2TO4, PatternKind.STRUCTURED_NTOM)


def sparsegpt_prune(
    weights: Array,
    hessian: Array,
    /,
    sparsity: float | None = None,
    *,
    pattern: SparsityPattern | None = None,
    block_size: int = 128,
    damp: float = 0.01,
    dtype: Any = "float32",
) -> tuple[Array, PruningMask]:
    """Prune a layer with SparseGPT; return ``(updated_weights, mask)``.

    Parameters
    ----------
    weights : array, shape ``(out_features, in_features)``
        Not modified. Any real float dtype (computed in ``dtype``, returned
        in the weights' dtype).
    hessian : array, shape ``(in_features, in_features)``
        ``2 X^T X / n`` of the layer's inputs (see
        :class:`~arraysparse.calibration.HessianAccumulator`); same library
        and device as ``weights``. Any positive scale gives the same result.
    sparsity : float or int, optional
        Unstructured: the fraction (or count) of weights to prune. N:M:
        omit it (the pattern fixes ``n / m``).
    pattern : SparsityPattern, optional
        Unstructured (default), ``two_four()`` or ``n_m(n, m)`` along the
        input axis (the last).
    block_size : int
        Columns per block (128 as published); N:M needs ``m`` to divide it.
    damp : float
        ``lambda``: ``lambda * mean(diag H)`` is added to the diagonal.
    dtype : {"float32", "float64"}
        Compute dtype (float32, the reference's, by default).

    Returns
    -------
    updated_weights : array
        Same library, device, shape and dtype as ``weights``; pruned entries
        are zero, kept ones carry the OBS updates.
    mask : PruningMask
        ``True`` = kept; unstructured or N:M along the last axis.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.calibration import HessianAccumulator
    >>> from arraysparse.strategies.sparsegpt import sparsegpt_prune
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((256, 16)).astype(np.float32)
    >>> w = rng.standard_normal((8, 16)).astype(np.float32)
    >>> acc = HessianAccumulator()
    >>> acc.update(x)
    >>> h = acc.hessian
    >>> w2, mask = sparsegpt_prune(w, h, 0.5)
    >>> mask.num_pruned, bool(np.all(w2[~mask.mask] == 0))
    (64, True)
    >>> w2.dtype, bool(np.any(w2[mask.mask] != w[mask.mask]))   # kept weights were updated
    (dtype('float32'), True)
    """
    xp = array_namespace(weights=weights, hessian=hessian)
    pattern = _check_pattern(pattern if pattern is not None else SparsityPattern.unstructured())
    block_size = positive_int(block_size, "block_size")
    damp = _check_damp(damp)
    dt_name = float_dtype_name(dtype)
    _check_weights(xp, weights)
    rows, cols = (int(s) for s in weights.shape)
    if tuple(hessian.shape) != (cols, cols):
        msg = (
            f"hessian has shape {tuple(hessian.shape)} but weights {tuple(weights.shape)} "
            f"has {cols} input features: expected ({cols}, {cols})"
        )
        raise ValueError(msg)
    if not isdtype(xp, hessian.dtype, "real floating"):
        msg = f"hessian has dtype {hessian.dtype}; a real float dtype is required"
        raise TypeError(msg)
    nm = _nm_of(pattern, sparsity, cols, block_size)
    counts = None if nm else _block_counts(prune_count(sparsity, rows * cols), rows, cols, block_size)


    def prepare(ns: ModuleType, w: Array, h: Array) -> tuple[Array, Array]:
        return _prepare(ns, w, h, getattr(ns, dt_name), damp)

    q, keep = _backends.sparsegpt_sweep(xp, weights, hessian, prepare, counts, nm, block_size)
    out_pattern = SparsityPattern.n_m(*nm, axis=-1) if nm else SparsityPattern.unstructured()
    return xp.astype(q, weights.dtype), PruningMask(keep, out_pattern)


class SparseGPTPruning(PruningStrategy):
    """SparseGPT as a strategy: calibrate from batches of layer inputs, then prune with updates.

    Parameters
    ----------
    pattern : SparsityPattern, optional
        Unstructured (default), 2:4 or N:M along the input axis.
    block_size : int
        Columns per block (128).
    damp : float
        Dampening ``lambda`` (0.01): ``lambda * mean(diag H)`` is added to ``H``'s diagonal.
    dtype : {"float32", "float64"}
        Compute dtype, and the accumulation dtype of the Hessian this
        strategy creates.
    accumulator : HessianAccumulator, optional
        Share one accumulator between layers that see the same inputs
        (e.g. the query, key and value projections), or bring one already fed.

    Notes
    -----
    :meth:`prune` returns ``(updated_weights, mask)``: the weights that
    minimise the layer's output error for that mask, not a masked copy of
    the input, which stays untouched. :meth:`compute_importance_scores`
    gives the OBS saliency ``w^2 / U_jj^2`` of the initial weights (what the
    first block is ranked by); masks built from it and
    :meth:`apply_pruning` do no weight update.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> from arraysparse.strategies.sparsegpt import SparseGPTPruning
    >>> rng = np.random.default_rng(0)
    >>> w = rng.standard_normal((8, 16)).astype(np.float32)
    >>> s = SparseGPTPruning(asp.SparsityPattern.two_four())
    >>> for _ in range(4):                      # batches of (batch, seq, in_features)
    ...     s.calibrate(rng.standard_normal((2, 32, 16)).astype(np.float32))
    >>> w2, mask = s.prune(w)
    >>> mask.satisfies(), int((w2 == 0).sum())
    (True, 64)
    """

    name = "sparsegpt"
    supported_patterns = SUPPORTED

    def __init__(
        self,
        pattern: SparsityPattern | None = None,
        *,
        block_size: int = 128,
        damp: float = 0.01,
        dtype: Any = "float32",
        accumulator: HessianAccumulator | None = None,
    ):
        super().__init__(pattern)
        _check_pattern(self.pattern)
        self.block_size = positive_int(block_size, "block_size")
        """Columns swept per block (the lazy-update batch of the SparseGPT paper)."""
        self.damp = _check_damp(damp)
        """Dampening: ``damp * mean(diag(H))`` is added to the Hessian's diagonal."""
        self.dtype = float_dtype_name(dtype)
        """Name of the float dtype the sweep computes in (``"float32"`` or ``"float64"``)."""
        if accumulator is None:
            accumulator = HessianAccumulator(dtype=self.dtype)
        if not isinstance(accumulator, HessianAccumulator):
            msg = f"accumulator must be a HessianAccumulator, got {type(accumulator).__name__}"
            raise TypeError(msg)
        self.accumulator = accumulator
        """The :class:`~arraysparse.HessianAccumulator` that :meth:`calibrate` feeds."""

    def calibrate(self, x: Array, /, *, mask: Array | None = None) -> None:
        """Feed one batch of layer inputs ``(..., in_features)``; ``mask`` (``True`` = real token,
        broadcasting to ``x.shape[:-1]``) leaves padding out of ``H`` and of the token count.

        Returns ``None``, so a torch forward hook may call it (see :meth:`hook`).
        """
        self.accumulator.update(x, mask=mask)

    def hook(self, *, mask: Callable[[], Array | None] | None = None) -> Callable[..., None]:
        """A torch forward hook calibrating on the layer's input: ``layer.register_forward_hook(s.hook())``.

        See :meth:`arraysparse.calibration.HessianAccumulator.hook`.
        """
        return self.accumulator.hook(mask=mask)

    @property
    def is_calibrated(self) -> bool:
        """True once :meth:`calibrate` has seen at least one token."""
        return not self.accumulator.is_empty

    def _hessian(self, weights: Array) -> Array:
        if not self.is_calibrated:
            msg = (
                "SparseGPTPruning is not calibrated: feed batches of the layer's inputs "
                "with calibrate(x) first"
            )
            raise ValueError(msg)
        self.accumulator.check_partner(weights, "weights")
        return self.accumulator.hessian

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """OBS saliency ``w^2 / U_jj^2`` of the weights as given (dead inputs score 0)."""
        check_gradients(weights, gradients)
        h = self._hessian(weights)
        xp = array_namespace(weights=weights, hessian=h)
        _check_weights(xp, weights)
        if tuple(h.shape) != (weights.shape[1],) * 2:
            msg = (
                f"weights has {weights.shape[1]} input features but the calibration "
                f"inputs had {h.shape[0]}"
            )
            raise ValueError(msg)
        w, u = _prepare(xp, weights, h, getattr(xp, self.dtype), self.damp)
        d = xp.linalg.diagonal(u)
        return xp.astype((w * w) / (d * d)[None, :], weights.dtype)

    def prune(
        self,
        weights: Array,
        target_sparsity: float | None = None,
        gradients: Array | None = None,
    ) -> tuple[Array, PruningMask]:
        """SparseGPT with weight updates; returns ``(updated_weights, mask)``, ``weights`` untouched."""
        check_gradients(weights, gradients)
        h = self._hessian(weights)
        if weights.ndim == 2 and int(weights.shape[1]) != int(h.shape[0]):
            msg = (
                f"weights has {int(weights.shape[1])} input features but the calibration "
                f"inputs had {int(h.shape[0])}"
            )
            raise ValueError(msg)
        return sparsegpt_prune(
            weights,
            h,
            target_sparsity,
            pattern=self.pattern,
            block_size=self.block_size,
            damp=self.damp,
            dtype=self.dtype,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(pattern={self.pattern}, block_size={self.block_size}, "
            f"damp={self.damp:g}, dtype={self.dtype})"
        )


# -- checks ------------------------------------------------------------------------------
def _check_pattern(pattern: Any) -> SparsityPattern:
    if not isinstance(pattern, SparsityPattern):
        msg = f"pattern must be a SparsityPattern, got {type(pattern).__name__}"
        raise TypeError(msg)
    if pattern.kind not in SUPPORTED:
        msg = f"pattern={pattern} is not supported by SparseGPT; use unstructured, 2:4 or N:M"
        raise ValueError(msg)
    if pattern.is_n_m and pattern.axis_or(-1) not in (-1, 1):
        msg = f"pattern={pattern}: SparseGPT's N:M groups run along the input axis (axis=-1)"
        raise ValueError(msg)
    return pattern


def _check_damp(damp: Any) -> float:
    if isinstance(damp, bool) or not isinstance(damp, (int, float, np.floating, np.integer)):
        msg = f"damp must be a non-negative number, got {damp!r}"
        raise TypeError(msg)
    if not 0.0 <= float(damp) < float("inf"):
        msg = f"damp={damp!r} must be a finite number >= 0"
        raise ValueError(msg)
    return float(damp)


def _check_weights(xp: ModuleType, weights: Array) -> None:
    if weights.ndim != 2:
        msg = f"weights must be 2-D (out_features, in_features), got shape {tuple(weights.shape)}"
        raise ValueError(msg)
    if not isdtype(xp, weights.dtype, "real floating"):
        msg = f"weights has dtype {weights.dtype}; SparseGPT updates weights, which must be real floats"
        raise TypeError(msg)
    check_has_zero(weights, "weights", "SparseGPT writes zeros")


def _nm_of(pattern: SparsityPattern, sparsity: Any, cols: int, block_size: int) -> tuple[int, int] | None:
    if not pattern.is_n_m:
        if sparsity is None:
            msg = f"sparsity is required for the pattern {pattern}"
            raise ValueError(msg)
        return None
    n, m = pattern.nm
    if sparsity is not None:
        if isinstance(sparsity, (bool, np.bool_)) or not isinstance(sparsity, (int, float)):
            msg = f"sparsity={sparsity!r}: N:M patterns take sparsity=None"
            raise TypeError(msg)
        if abs(float(sparsity) - n / m) > 1e-12:
            msg = f"sparsity={sparsity!r} disagrees with the pattern {pattern} (n/m = {n / m:g}); pass None"
            raise ValueError(msg)
    if cols % m:
        msg = f"m={m} must divide in_features={cols}"
        raise ValueError(msg)
    if block_size % m:
        msg = f"block_size={block_size} must be a multiple of m={m} (groups never cross blocks)"
        raise ValueError(msg)
    return n, m


def _block_counts(count: int, rows: int, cols: int, block_size: int) -> list[int]:
    """Share ``count`` pruned weights between the column blocks in proportion to their width.

    Block ``[i1, i2)`` prunes ``round(count * i2 / cols) - round(count * i1 / cols)``
    (exact rationals, half to even), so the counts add up to ``count`` and a
    block of a layer whose ``s * rows * block`` is whole prunes exactly that.
    """
    bounds = [*range(0, cols, block_size), cols]
    edges = [round(Fraction(count * i, cols)) for i in bounds] if cols else [0]
    return [b - a for a, b in itertools.pairwise(edges)]


# -- the algorithm -----------------------------------------------------------------------
def _prepare(xp: ModuleType, weights: Array, hessian: Array, dt: Any, damp: float) -> tuple[Array, Array]:
    """Dead inputs, dampening and ``U`` (upper Cholesky factor of ``H^-1``); array API only."""
    dev = device(weights)
    w = xp.astype(weights, dt)
    h = xp.astype(hessian, dt)
    n = int(h.shape[0])
    if not bool(xp.all(xp.isfinite(w))):
        msg = "weights contains NaN or inf; SparseGPT needs finite weights"
        raise ValueError(msg)
    if not bool(xp.all(xp.isfinite(h))):
        msg = "hessian contains NaN or inf (were the calibration inputs finite?)"
        raise ValueError(msg)
    if n == 0:
        return w, h
    diag = xp.linalg.diagonal(h)
    dead = diag == 0
    fixed = xp.where(dead, xp.ones_like(diag), diag)
    shift = xp.astype(dead, dt) + damp * xp.mean(fixed)
    eye = xp.eye(n, dtype=dt, device=dev)
    h = h + eye * shift[None, :]
    w = xp.where(dead[None, :], xp.zeros_like(w), w)
    # U^T U = H^-1 with U upper: with J the reversal, U = J L^-1 J where L L^T = J H J
    rev = xp.flip(xp.flip(h, axis=0), axis=1)
    try:
        low_inv = _cholesky_inverse_factor(xp, rev)
    except Exception as e:  # noqa: BLE001 - each library raises its own LinAlgError
        msg = f"hessian is not positive definite even after dampening (damp={damp:g}): {e}"
        raise ValueError(msg) from None
    if not bool(xp.all(xp.isfinite(low_inv))):  # JAX returns NaN instead of raising
        msg = f"hessian is not positive definite even after dampening (damp={damp:g})"
        raise ValueError(msg)
    return w, xp.flip(xp.flip(low_inv, axis=0), axis=1)


def _cholesky_inverse_factor(xp: ModuleType, k: Array) -> Array:
    """``L^-1`` where ``L L^T = k`` (``L`` lower triangular), by halves, in matrix products.

    With ``k = [[A, B^T], [B, C]]``: ``L11 = chol(A)``, ``L21 = B L11^-T``,
    ``L22 = chol(C - L21 L21^T)`` and ``L^-1 = [[L11^-1, 0], [-L22^-1 L21 L11^-1, L22^-1]]``;
    each half returns its factor's inverse, which is all the next step needs.
    About ``4 n^3 / 3`` flops, nearly all in matrix products, against a
    LAPACK Cholesky plus a general inverse (which on a busy multi-core CPU
    run several times slower than the same flops in ``matmul``). Small
    blocks use the library's own ``cholesky`` and ``inv``.
    """
    n = int(k.shape[0])
    if n <= 128:
        return _backends.cholesky_inverse_base(xp, k)
    h = n // 2
    a_inv = _cholesky_inverse_factor(xp, k[:h, :h])
    l21 = xp.matmul(k[h:, :h], xp.matrix_transpose(a_inv))
    schur = k[h:, h:] - xp.matmul(l21, xp.matrix_transpose(l21))
    schur = (schur + xp.matrix_transpose(schur)) / 2  # symmetric up to rounding
    d_inv = _cholesky_inverse_factor(xp, schur)
    c = -xp.matmul(d_inv, xp.matmul(l21, a_inv))
    zeros = xp.zeros((h, n - h), dtype=k.dtype, device=device(k))
    return xp.concat([xp.concat([a_inv, zeros], axis=1), xp.concat([c, d_inv], axis=1)], axis=0)
