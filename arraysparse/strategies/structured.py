"""Structured pruning: whole rows, columns, filters, channels or slices by Lp norm."""

from __future__ import annotations

from typing import Any

from ..patterns import SLICE_KINDS, SparsityPattern
from ..scores import magnitude_scores
from .base import PruningStrategy, check_gradients

Array = Any


class StructuredPruning(PruningStrategy):
    """Prunes whole structures with the smallest Lp norm (``ord``: L1, L2, any p, inf).

    The pattern picks the structure: ``SparsityPattern.rows()`` (default),
    ``columns()``, ``filters()``, ``channels(axis=...)`` or ``slices(axis)``.
    On tie-free inputs the mask equals ``torch.nn.utils.prune.ln_structured``.

    Examples
    --------
    >>> import numpy as np, arraysparse as asp
    >>> w = np.array([[3.0, 4.0], [0.1, 0.1], [1.0, 1.0]])
    >>> asp.StructuredPruning(asp.SparsityPattern.rows(), ord=1).prune(w, 1)[0]
    array([[3., 4.],
           [0., 0.],
           [1., 1.]])
    """

    name = "structured"
    supported_patterns = tuple(sorted(SLICE_KINDS, key=lambda k: k.value))

    @classmethod
    def default_pattern(cls) -> SparsityPattern:
        """Whole rows (axis 0): the output neurons of a Linear weight."""
        return SparsityPattern.rows()

    def compute_importance_scores(self, weights: Array, gradients: Array | None = None) -> Array:
        """Element magnitudes; :meth:`create_mask` reduces them to structure norms."""
        check_gradients(weights, gradients)
        return magnitude_scores(weights)
