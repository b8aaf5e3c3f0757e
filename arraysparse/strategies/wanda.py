"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter, 2024).

The score of weight ``W[i, j]`` of a layer ``y = W x`` (weight shape
``(out_features, in_features)``) is ``|W[i, j]| * ||X_j||_2``, where
``||X_j||_2`` is the L2 norm of input feature ``j`` over the calibration
tokens. Scores are compared within each output row by default (every row
loses exactly its share, as in the paper), or over the whole layer; N:M
groups run along the input axis. There is no weight update.

Differences from the published code, deliberate: the per-row count is the
library's ``round(s * in_features)`` (half to even) where the paper's code
truncates with ``int(...)``; the paper's code keeps ``||X_j||^2 / n``, a
constant factor away from ``||X_j||_2^2``, which does not change any mask.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .. import _backends
from .._compat import array_namespace, device, isdtype
from .._validation import prune_count
from ..calibration import InputNormAccumulator
from ..masks import PruningMask, _counted, nm_mask
from ..patterns import PatternKind, SparsityPattern
from .base import PruningStrategy, check_gradients

__all__ = ["WandaPruning", "wanda_scores"]

Array = Any

COMPARISONS = ("row", "layer")


def wanda_scores(weights: Array, norms: Array, /) -> Array:
    """``|weights| * norms``: Wanda's score of every weight of an ``(out, in)`` layer.

    ``norms`` holds ``||X_j||_2`` of every input feature (shape
    ``(in_features,)``, same library and device). The scores have the
    weights' float dtype (integer weights: the norms' dtype).

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.wanda import wanda_scores
    >>> wanda_scores(np.array([[1.0, -2.0], [3.0, 0.5]]), np.array([10.0, 1.0]))
    array([[10. ,  2. ],
           [30. ,  0.5]])
    """
    xp = array_namespace(weights=weights, norms=norms)
    if weights.ndim != 2:
        msg = f"weights must be 2-D (out_features, in_features), got shape {tuple(weights.shape)}"
        raise ValueError(msg)
    if weights.dtype == xp.bool or not isdtype(xp, weights.dtype, ("integral", "real floating")):
        msg = f"weights has dtype {weights.dtype}; Wanda scores need real numbers"
        raise TypeError(msg)
    if tuple(norms.shape) != (weights.shape[1],):
        msg = (
            f"norms has shape {tuple(norms.shape)} but weights {tuple(weights.shape)} has "
            f"{weights.shape[1]} input features: expected ({weights.shape[1]},)"
        )
        raise ValueError(msg)
    if isdtype(xp, weights.dtype, "real floating"):
        return xp.abs(weights) * xp.astype(norms, weights.dtype)[None, :]
    return xp.astype(xp.abs(weights), norms.dtype) * norms[None, :]


class WandaPruning(PruningStrategy):
    """Wanda as a strategy: calibrate from batches of layer inputs, then prune.

    Parameters
    ----------
    pattern : SparsityPattern, optional
        Unstructured (default), 2:4 or N:M along the input axis (the last).
    comparison : {"row", "layer"}
        Unstructured only: prune each output row's lowest scores (the paper's
        default, exactly ``round(s * in_features)`` per row) or the layer's.
    accumulator : InputNormAccumulator, optional
        Share one accumulator between layers that see the same inputs, or
        bring one already fed.

    Examples
    --------
    >>> import numpy as np
    >>> from arraysparse.strategies.wanda import WandaPruning
    >>> rng = np.random.default_rng(0)
    >>> s = WandaPruning()
    >>> for _ in range(3):                       # batches of (batch, seq, in_features)
    ...     s.calibrate(rng.standard_normal((2, 16, 8)))
    >>> w = rng.standard_normal((4, 8))
    >>> pruned, mask = s.prune(w, 0.5)
    >>> (~mask.mask).sum(axis=1)                 # every row loses exactly half
    array([4, 4, 4, 4])
    """

    name = "wanda"
    supported_patterns = (PatternKind.UNSTRUCTURED, PatternKind.STRUCTURED_2TO4, PatternKind.STRUCTURED_NTOM)

    def __init__(
        self,
        pattern: SparsityPattern | None = None,
        *,
        comparison: str = "row",
        accumulator: InputNormAccumulator | None = None,
    ):
        super().__init__(pattern)
        if self.pattern.is_n_m and self.pattern.axis_or(-1) not in (-1, 1):
            msg = f"pattern={self.pattern}: Wanda's N:M groups run along the input axis (axis=-1)"
            raise ValueError(msg)
        if comparison not in COMPARISONS:
            msg = f'comparison={comparison!r} must be "row" or "layer"'
            raise ValueError(msg)
        self.comparison = comparison
        """``"row"``: each output row loses its own lowest scores (the paper's); ``"layer"``: the matrix's."""
        if accumulator is None:
            accumulator = InputNormAccumulator()
        if not isinstance(accumulator, InputNormAccumulator):
            msg = f"accumulator must be an InputNormAccumulator, got {type(accumulator).__name__}"
            raise TypeError(msg)
        self.accumulator = accumulator
        """The :class:`~arraysparse.InputNormAccumulator` that :meth:`calibrate` feeds."""

    def calibrate(self, x: Array, /, *, mask: Array | None = None) -> None:
        """Feed one batch of layer inputs ``(..., in_features)``; ``mask`` (``True`` = real token,
        broadcasting to ``x.shape[:-1]``) leaves padding out.

        Returns ``None``, so a torch forward hook may call it (see :meth:`hook`).
        """
        self.accumulator.update(x, mask=mask)

    def hook(self, *, mask: Callable[[], Array | None] | None = None) -> Callable[..., None]:
        """A torch forward hook calibrating on the layer's input: ``layer.register_forward_hook(s.hook())``.

        See :meth:`arraysparse.calibration.InputNormAccumulator.hook`.
        """
        return self.accumulator.hook(mask=mask)

    @property
    def is_calibrated(self) -> bool:
        """True once :meth:`calibrate` has seen at least one token."""
        return not self.accumulator.is_empty

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """``|W_ij| * ||X_j||_2`` from the calibration so far; ``ValueError`` before any.

        Dask weights: norms calibrated from NumPy (or CPU torch) batches, one per
        input feature, are sent to the workers; the scores are lazy. Norms calibrated
        from Dask batches are lazy too and equal NumPy's bit for bit.
        """
        check_gradients(weights, gradients)
        if not self.is_calibrated:
            msg = "WandaPruning is not calibrated: feed batches of the layer's inputs with calibrate(x) first"
            raise ValueError(msg)
        self.accumulator.check_partner(weights, "weights")
        norms = self.accumulator.norms
        if weights.ndim == 2 and int(weights.shape[1]) != int(norms.shape[0]):
            msg = (
                f"weights has {int(weights.shape[1])} input features but the calibration "
                f"inputs had {int(norms.shape[0])}"
            )
            raise ValueError(msg)
        return wanda_scores(weights, _backends.lift(norms, weights))

    def create_mask(self, scores: Array, target_sparsity: float | None = None) -> PruningMask:
        """Row comparison: each row of ``scores`` prunes its own ``round(s * row_length)`` lowest.

        With ``comparison="row"`` an int ``target_sparsity`` is a count per row.
        """
        if self.pattern.kind is not PatternKind.UNSTRUCTURED or self.comparison == "layer":
            return super().create_mask(scores, target_sparsity)
        if target_sparsity is None:
            msg = f"sparsity is required for the pattern {self.pattern}"
            raise ValueError(msg)
        xp = array_namespace(scores=scores)
        if scores.ndim == 0:
            msg = "scores is 0-d; row comparison needs rows"
            raise ValueError(msg)
        length = int(scores.shape[-1])
        k = prune_count(target_sparsity, length, name="target_sparsity")
        # a per-row top-k is an N:M mask whose group is the whole row
        if length == 0:
            return PruningMask(xp.ones(tuple(scores.shape), dtype=xp.bool, device=device(scores)))
        rows = nm_mask(scores, k, length, axis=-1)
        return _counted(PruningMask(rows.mask, SparsityPattern.unstructured()), rows._pruned)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(pattern={self.pattern}, comparison={self.comparison!r})"
