"""First-order Taylor pruning (Molchanov et al. 2019): per weight or per structure.

Removing a weight ``w`` changes the loss by about ``-w * dL/dw``; Molchanov et al.
score a weight by the square of that, ``(w * g) ** 2``, and a structure (a filter, a
channel, any slice or tile) by the square of the **sum** over its weights,
``(sum w * g) ** 2``: the first-order change of the loss when the whole structure
is removed at once. The sum comes first, so weights whose contributions cancel make
a structure unimportant even when each of them alone would matter.
"""

from __future__ import annotations

import math
from typing import Any

from .._compat import array_namespace, ensure_array
from .._validation import check_real, check_same_shape, normalize_axis
from ..patterns import SLICE_KINDS, PatternKind
from ..scores import check_block_shape
from .base import PruningStrategy

__all__ = ["TaylorPruning", "taylor_scores"]

Array = Any


def taylor_scores(
    weights: Array,
    gradients: Array,
    /,
    *,
    axis: int | None = None,
    block: tuple[int, ...] | None = None,
) -> Array:
    """First-order Taylor importance: ``(w * g) ** 2``, or ``(sum w * g) ** 2`` per structure.

    Without ``axis`` and ``block``: one score per weight, the shape of ``weights``.

    Parameters
    ----------
    weights, gradients : array
        One shape, one library and device; real dtypes.
    axis : int, optional
        Score whole slices ``weights[..., i, ...]`` along ``axis`` (axis 0 of a conv
        weight ``(out, in, kh, kw)``: filters; axis 1: input channels). Returns an
        array of shape ``(weights.shape[axis],)``.
    block : tuple of int, optional
        Score tiles of shape ``block`` over the trailing axes; returns one score per
        tile, shape ``weights.shape[:-k] + (s // b, ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.taylor import taylor_scores
    >>> w = np.array([[1.0, 2.0], [3.0, -1.0]]); g = np.array([[0.5, 0.5], [1.0, 3.0]])
    >>> taylor_scores(w, g)
    array([[0.25, 1.  ],
           [9.  , 9.  ]])
    >>> taylor_scores(w, g, axis=0)   # rows: (0.5 + 1)^2, (3 - 3)^2
    array([2.25, 0.  ])
    """
    xp = _check_pair(weights, gradients)
    contrib = weights * gradients
    if axis is not None and block is not None:
        msg = f"give axis={axis!r} or block={block!r}, not both"
        raise ValueError(msg)
    if axis is not None:
        if weights.ndim == 0:
            msg = "weights is 0-d; per-structure Taylor scores need at least one axis"
            raise ValueError(msg)
        ax = normalize_axis(axis, weights.ndim)
        others = tuple(i for i in range(weights.ndim) if i != ax)
        total = xp.sum(contrib, axis=others) if others else contrib
        return ensure_array(total * total)
    if block is not None:
        sums = _tile_sums(xp, contrib, _block(block))
        return ensure_array(sums * sums)
    return ensure_array(contrib * contrib)


def _check_pair(weights: Array, gradients: Array | None) -> Any:
    if gradients is None:
        msg = "gradients is None; Taylor scores need the loss gradient of every weight"
        raise ValueError(msg)
    xp = array_namespace(weights=weights, gradients=gradients)
    check_same_shape(weights, gradients, "weights", "gradients")
    check_real(xp, weights, "weights")
    check_real(xp, gradients, "gradients")
    return xp


def _block(block: Any) -> tuple[int, ...]:
    from ..patterns import SparsityPattern

    return SparsityPattern.blocks(block).block or ()


def _tile_sums(xp: Any, x: Array, block: tuple[int, ...]) -> Array:
    """Sum of every tile of shape ``block`` over the trailing axes (signed, no norm)."""
    shape = tuple(x.shape)
    check_block_shape(shape, block)
    k = len(block)
    lead = shape[: len(shape) - k]
    split: list[int] = list(lead)
    for s, b in zip(shape[len(lead) :], block):
        split += [s // b, b]
    inner = tuple(len(lead) + 2 * i + 1 for i in range(k))
    return xp.sum(xp.reshape(x, tuple(split)), axis=inner)


def _spread_tiles(xp: Any, tiles: Array, shape: tuple[int, ...], block: tuple[int, ...]) -> Array:
    """Every element gets its tile's value."""
    k = len(block)
    lead = shape[: len(shape) - k]
    spread: list[int] = list(lead)
    full: list[int] = list(lead)
    for t, b in zip(tiles.shape[len(lead) :], block):
        spread += [t, 1]
        full += [t, b]
    out = xp.broadcast_to(xp.reshape(tiles, tuple(spread)), tuple(full))
    return xp.reshape(out, shape)


class TaylorPruning(PruningStrategy):
    """First-order Taylor pruning; per weight, or per structure for structured patterns.

    * Unstructured, 2:4 and N:M patterns rank weights by ``(w * g) ** 2``.
    * Rows, columns, filters, channels and slices rank each structure by
      ``(sum over the structure of w * g) ** 2`` (Molchanov et al. 2019); blocks
      rank each tile the same way. :meth:`compute_importance_scores` then gives
      every weight the score of its structure, so the scores keep the weights'
      shape, and structures are compared by that value exactly (the strategy
      ranks structures by the maximum of their scores, ``ord=inf``, which is the
      structure's own score).

    Gradients are required: the loss gradient of every weight, e.g. summed or
    averaged over a few batches (Molchanov et al. average the per-batch scores;
    average ``taylor_scores`` yourself and pass them to :meth:`create_mask` for that).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse import SparsityPattern
    >>> from arraysparse.strategies.taylor import TaylorPruning
    >>> w = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
    >>> g = np.array([[0.5, 0.5], [1.0, 3.0], [1.0, 1.0]])
    >>> TaylorPruning(SparsityPattern.rows()).prune(w, 1, gradients=g)[0]   # row 1 cancels out
    array([[1. , 2. ],
           [0. , 0. ],
           [0.5, 0.5]])
    >>> TaylorPruning().prune(w, 0.5, gradients=g)[0]
    array([[ 0.,  2.],
           [ 3., -1.],
           [ 0.,  0.]])
    """

    name = "taylor"
    requires_gradients = True

    def __init__(self, pattern: Any = None) -> None:
        # ord=inf: a structure's scores are all equal, their maximum is the structure's score
        super().__init__(pattern, ord=math.inf)

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """``(w * g) ** 2``, or for structured patterns each weight's structure score."""
        xp = _check_pair(weights, gradients)
        kind = self.pattern.kind
        if kind in SLICE_KINDS:
            per = taylor_scores(weights, gradients, axis=self.pattern.axis_or(0))
            ax = normalize_axis(self.pattern.axis_or(0), weights.ndim)
            shape = [1] * weights.ndim
            shape[ax] = weights.shape[ax]
            out = xp.broadcast_to(xp.reshape(per, tuple(shape)), tuple(weights.shape))
            return xp.asarray(out, copy=True)
        if kind is PatternKind.BLOCK_STRUCTURED:
            block = self.pattern.block or ()
            tiles = taylor_scores(weights, gradients, block=block)
            return xp.asarray(_spread_tiles(xp, tiles, tuple(weights.shape), block), copy=True)
        return taylor_scores(weights, gradients)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pattern={self.pattern})"
